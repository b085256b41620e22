"""Render prompts to images with a diffusers text-to-image pipeline: SD 1.x/2.x, SDXL, SD3/3.5,
FLUX.1, PixArt-Sigma or Sana (`promptrl.families` says what each reads of a prompt).

The renderer batches prompts into chunks of `chunk_size` per pipeline call and gives every
sample its own seeded `torch.Generator`, so one batched call renders exactly what
rendering the prompts one by one would. Seeds default to a stable hash of the idea a prompt
came from: the same idea is rendered from the same noise at every step, so a reward change
between two prompts for one idea comes from the prompts, not from the noise.

Prompts longer than what the family's prompt encoder reads (77 CLIP tokens for SD and SDXL, T5's
`max_sequence_length` for SD3, FLUX and PixArt, Gemma's for Sana; special tokens included) are
cut to fit at a word boundary, flagged in `RenderOutput.truncated` and logged with the encoder's
name; never silently.

On a GPU, `render.offload` trades speed for memory (diffusers' CPU offload), `render.vae_slicing`
and `render.vae_tiling` bound the decoder's memory, and `render.vae: taesd` decodes training
renders with the family's tiny TAESD decoder (the full VAE stays loaded for `preview=False`:
evaluation and the app).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import PIL.Image
import torch

from .devices import resolve_device
from .errors import UsageError, loading
from .families import Family, family_of
from .paths import check_model_source
from .render_config import SEED_MODES, RenderConfig, check_family_options, check_pipeline_options, family_dtype
from .seeds import derive_seed

logger = logging.getLogger("promptrl")


@dataclass
class RenderOutput:
    images: torch.Tensor
    """`[batch, 3, H, W]` float32 in [0, 1], on the renderer's device."""
    prompts: list[str]
    """The prompts as rendered, after truncation to the token limit."""
    seeds: list[int]
    """The seed of each sample's noise."""
    truncated: list[bool]
    """Whether each prompt was cut to fit the token limit."""
    pil: list[PIL.Image.Image] | None = None
    """The images as PIL images when asked for (`return_pil=True`), else None."""


def idea_seed(base_seed: int, idea: str) -> int:
    """The image seed of `idea`, in [0, 2**32): the same in every process and run."""
    return derive_seed(base_seed, "image", idea) % 2**32


def pipeline_family(name: str) -> Family:
    """The family of the pipeline at `name` (a hub name or local directory), from its
    `model_index.json` alone: nothing heavy is loaded."""
    from diffusers import DiffusionPipeline

    check_model_source(name, "render.pipeline")
    with loading("diffusers pipeline", name):
        index = DiffusionPipeline.load_config(name)
    return family_of(index.get("_class_name", ""))


def load_pipeline(name: str, dtype: torch.dtype, safety_checker: bool = False, drop_t5: bool = False):
    """Load a text-to-image pipeline from the hub or a local directory, in `dtype`.

    In half precision the `fp16` weight files are fetched where the repository has them
    (half the download). Without `safety_checker` the checker is not even loaded (it is
    ~1 GB on SD 1.5); with `drop_t5` neither is SD3's T5 encoder.
    """
    import diffusers
    from diffusers import AutoPipelineForText2Image, DiffusionPipeline
    from packaging.version import Version

    check_model_source(name, "render.pipeline")
    kwargs = {}
    with loading("diffusers pipeline", name):
        pipeline_config = DiffusionPipeline.load_config(name)
    if not safety_checker and "safety_checker" in pipeline_config:
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    if drop_t5:
        kwargs.update(text_encoder_3=None, tokenizer_3=None)
    # diffusers 0.40 renamed `torch_dtype` to `dtype`; older versions ignore `dtype`.
    dtype_key = "dtype" if Version(diffusers.__version__) >= Version("0.40") else "torch_dtype"
    kwargs[dtype_key] = dtype
    with loading("diffusers pipeline", name):
        if dtype != torch.float32:
            try:
                return AutoPipelineForText2Image.from_pretrained(name, variant="fp16", **kwargs)
            except ValueError as e:  # the repository has no fp16 files: load the full ones
                if "variant" not in str(e):
                    raise
        return AutoPipelineForText2Image.from_pretrained(name, **kwargs)


def load_preview_decoder(name: str, dtype: torch.dtype):
    """A TAESD decoder (diffusers `AutoencoderTiny`) from the hub or a local directory."""
    from diffusers import AutoencoderTiny

    check_model_source(name, "render.preview_decoder")
    with loading("TAESD preview decoder", name):
        return AutoencoderTiny.from_pretrained(name, torch_dtype=dtype)


class _ClipCutByDesign(logging.Filter):
    """Drops diffusers' "... truncated because CLIP can only handle sequences up to 77 tokens"
    from pipelines whose long encoder (T5) reads the whole prompt: their CLIP encoders reading
    its first 77 tokens is how SD3 and FLUX work, and the Renderer logs itself which prompts its
    own limit cut. Every other diffusers message passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "CLIP can only handle sequences up to" not in record.getMessage()


CLIP_CUT_BY_DESIGN = _ClipCutByDesign()


class Renderer:
    """Renders batches of prompts with fixed per-sample seeds. See `RenderConfig`."""

    def __init__(self, config: RenderConfig | None = None, pipeline=None):
        self.config = config = config if config is not None else RenderConfig()
        if config.seed_mode not in SEED_MODES:
            raise UsageError(f"seed_mode must be one of {SEED_MODES}, got {config.seed_mode!r}")
        if config.chunk_size < 1:
            raise UsageError(f"chunk_size must be at least 1, got {config.chunk_size}")
        if pipeline is None:
            self.device = resolve_device(config.device)
            self.family = pipeline_family(config.pipeline)
            check_family_options(config, self.family, self.device)
            dtype = family_dtype(config, self.family, self.device)
            pipeline = load_pipeline(config.pipeline, dtype, config.safety_checker, config.drop_t5)
            self._place(pipeline)
        else:
            self.family = family_of(type(pipeline).__name__)
            if config.device is not None:
                self.device = resolve_device(config.device)
                check_family_options(config, self.family, self.device)
                self._place(pipeline)
            else:  # a pipeline built by the caller stays where it is (it may use CPU offload)
                self.device = pipeline._execution_device
                check_family_options(config, self.family, self.device)
        check_pipeline_options(config, self.family, pipeline)
        if not config.safety_checker and getattr(pipeline, "safety_checker", None) is not None:
            pipeline.safety_checker = None
        pipeline.set_progress_bar_config(disable=True)
        for key, enabled, method in (
            ("vae_slicing", config.vae_slicing, "enable_slicing"),
            ("vae_tiling", config.vae_tiling, "enable_tiling"),
        ):
            if enabled:
                if not hasattr(pipeline.vae, method):
                    raise UsageError(f"config key 'render.{key}': this pipeline's VAE cannot do it; remove the key")
                getattr(pipeline.vae, method)()
        self.pipeline = pipeline
        self.full_vae = pipeline.vae
        self.preview_vae = self._load_preview(pipeline) if config.vae == "taesd" else None

        self.tokenizer, self.encoder, self.sequence_length, encoder_limit = self._prompt_reader(pipeline)
        if self.encoder != "CLIP":  # SD3, FLUX: their CLIP encoders read 77 tokens by design (addFilter adds once)
            logging.getLogger(type(pipeline).__module__).addFilter(CLIP_CUT_BY_DESIGN)
        self.max_prompt_tokens = config.max_prompt_tokens or encoder_limit
        if not 3 <= self.max_prompt_tokens <= encoder_limit:
            raise UsageError(
                f"max_prompt_tokens must be between 3 and the {self.encoder} encoder's limit "
                f"({encoder_limit}), got {self.max_prompt_tokens}"
            )
        self._rng = random.Random(config.seed)

    def _place(self, pipeline) -> None:
        offload = self.config.offload
        if offload == "model":
            pipeline.enable_model_cpu_offload(device=self.device)
        elif offload == "sequential":
            pipeline.enable_sequential_cpu_offload(device=self.device)
        else:
            pipeline.to(self.device)

    def _load_preview(self, pipeline):
        name = self.config.preview_decoder or self.family.preview_decoder
        preview = load_preview_decoder(name, self.full_vae.dtype).to(self.device)
        # TAESD decodes the denoiser's latents as they are: the pipeline's `latents / scaling_factor
        # + shift_factor` before decoding must be the identity (older TAESD configs lack the keys).
        preview.register_to_config(scaling_factor=1.0, shift_factor=0.0)
        full_channels = self.full_vae.config.latent_channels
        if preview.config.latent_channels != full_channels:
            raise UsageError(
                f"config key 'render.preview_decoder': {name} decodes {preview.config.latent_channels}-channel "
                f"latents but {self.family.title} makes {full_channels}-channel ones; name a decoder for this family"
            )
        scale = preview.config.upsampling_scaling_factor ** (len(preview.config.decoder_block_out_channels) - 1)
        if scale != pipeline.vae_scale_factor:
            raise UsageError(
                f"config key 'render.preview_decoder': {name} upscales latents {scale}x but this "
                f"pipeline's VAE {pipeline.vae_scale_factor}x; name a decoder for this family"
            )
        return preview

    def _prompt_reader(self, pipeline) -> tuple[object, str, int | None, int]:
        """(tokenizer, encoder name, the call's max_sequence_length or None, token limit)."""
        family, config = self.family, self.config
        if family.max_sequence_length is None or getattr(pipeline, family.tokenizer, None) is None:
            tokenizer = getattr(pipeline, "tokenizer", None) or pipeline.tokenizer_2  # CLIP
            return tokenizer, "CLIP", None, tokenizer.model_max_length
        length = config.max_sequence_length or family.max_sequence_length
        return getattr(pipeline, family.tokenizer), family.encoder, length, length - family.instruction_tokens

    def _n_tokens(self, texts: list[str]) -> list[int]:
        if self.family.lowercases:
            texts = [t.lower().strip() for t in texts]
        return [len(ids) for ids in self.tokenizer(texts, truncation=False, verbose=False).input_ids]

    def _cut(self, prompt: str) -> str:
        """The longest prefix of whole words of `prompt` that fits the token limit."""
        words = prompt.split()
        lo, hi = 0, len(words)  # invariant: words[:lo] fits, words[:hi + 1] does not
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._n_tokens([" ".join(words[:mid])])[0] <= self.max_prompt_tokens:
                lo = mid
            else:
                hi = mid - 1
        return " ".join(words[:lo])

    def fit_prompts(self, prompts: list[str]) -> tuple[list[str], list[bool]]:
        """Cut prompts over the token limit (BOS/EOS included) to fit, at a word boundary.

        Returns the prompts to render and a flag per prompt; logs one warning per call
        naming how many prompts were cut.
        """
        too_long = [n > self.max_prompt_tokens for n in self._n_tokens(list(prompts))]
        fitted = [self._cut(p) if cut else p for p, cut in zip(prompts, too_long)]
        if any(too_long):
            logger.warning(
                "%d of %d prompts exceed the %s encoder's limit of %d tokens and were cut "
                "to fit (RenderOutput.truncated flags them)",
                sum(too_long),
                len(prompts),
                self.encoder,
                self.max_prompt_tokens,
            )
        return fitted, too_long

    def call_options(self, n: int) -> dict:
        """The pipeline call's keywords for a chunk of `n` prompts, besides prompts and seeds:
        what a plain pipeline call rendering what this renderer does would pass."""
        c, family = self.config, self.family
        options = {
            "num_inference_steps": c.num_inference_steps,
            "guidance_scale": c.guidance_scale,
            "height": c.height,
            "width": c.width,
            "output_type": "pt",
        }
        if c.negative_prompt:
            options["negative_prompt"] = [c.negative_prompt] * n
        if self.sequence_length is not None:
            options["max_sequence_length"] = self.sequence_length
        if family.name in ("pixart", "sana"):
            # The size asked for, not the nearest of the model's aspect-ratio bins resized back;
            # the prompt as the policy wrote it, not PixArt's caption clean-up.
            options.update(use_resolution_binning=False, clean_caption=False)
        return options

    def seeds_for(self, n: int, ideas: list[str] | None = None) -> list[int]:
        """Seeds for `n` samples under `config.seed_mode` ("idea" needs `ideas`)."""
        mode, base = self.config.seed_mode, self.config.seed
        if mode == "idea":
            if ideas is None or len(ideas) != n:
                raise UsageError(f"seed_mode 'idea' needs one idea per sample ({n}), got {ideas!r}")
            return [idea_seed(base, idea) for idea in ideas]
        if mode == "slot":
            return [base + i for i in range(n)]
        return [self._rng.randrange(2**32) for _ in range(n)]

    def __call__(
        self,
        prompts: list[str],
        ideas: list[str] | None = None,
        seeds: list[int] | None = None,
        return_pil: bool = False,
        preview: bool | None = None,
    ) -> RenderOutput:
        """Render `prompts` (seeded from `ideas`, or the prompts themselves, unless
        `seeds` are given) into `[batch, 3, H, W]` images in [0, 1]. `preview`: decode with the
        TAESD decoder (None: as `render.vae` says; only a renderer with `vae: taesd` has one)."""
        if isinstance(prompts, str):
            raise TypeError("Renderer takes a list of prompts, got a single string")
        if len(prompts) == 0:
            raise UsageError("Renderer got an empty list of prompts; pass at least one prompt")
        n = len(prompts)
        for name, values in (("ideas", ideas), ("seeds", seeds)):
            if values is not None and len(values) != n:
                raise UsageError(f"got {n} prompts but {len(values)} {name}; pass one per prompt")
        fitted, truncated = self.fit_prompts(prompts)
        if seeds is None:
            seeds = self.seeds_for(n, ideas if ideas is not None else list(prompts))

        if preview and self.preview_vae is None:
            raise UsageError("preview=True needs a renderer with render.vae: taesd")
        preview = self.preview_vae is not None if preview is None else preview

        c, chunks = self.config, []
        self.pipeline.vae = self.preview_vae if preview else self.full_vae
        try:
            for start in range(0, n, c.chunk_size):
                stop = min(start + c.chunk_size, n)  # the last chunk may be smaller
                # CPU generators: the same seed gives the same noise on every device.
                generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds[start:stop]]
                out = self.pipeline(prompt=fitted[start:stop], generator=generators, **self.call_options(stop - start))
                chunks.append(out.images.to(self.device, torch.float32))
        finally:
            self.pipeline.vae = self.full_vae
        images = torch.cat(chunks)

        pil = to_pil(images) if return_pil else None
        return RenderOutput(images, fitted, [int(s) for s in seeds], truncated, pil)


def to_pil(images: torch.Tensor) -> list[PIL.Image.Image]:
    """`[batch, 3, H, W]` floats in [0, 1] -> PIL images."""
    arr = (images.detach().float().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return [PIL.Image.fromarray(a) for a in arr]
