"""Render prompts to images with a Stable Diffusion pipeline (diffusers).

The renderer batches prompts into chunks of `chunk_size` per pipeline call and gives every
sample its own seeded `torch.Generator`, so one batched call renders exactly what
rendering the prompts one by one would. Seeds default to a stable hash of the idea a prompt
came from: the same idea is rendered from the same noise at every step, so a reward change
between two prompts for one idea comes from the prompts, not from the noise.

Prompts longer than the text encoder's limit (77 CLIP tokens, BOS and EOS included) are cut
to fit at a word boundary, flagged in `RenderOutput.truncated` and logged; never silently.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import PIL.Image
import torch

from . import checks
from .devices import DTYPES, resolve_device, resolve_dtype
from .errors import UsageError, loading
from .paths import check_model_source
from .seeds import derive_seed

logger = logging.getLogger("promptrl")

SEED_MODES = ("idea", "slot", "random")


@dataclass
class RenderConfig:
    pipeline: str = "stabilityai/sd-turbo"
    """Hub name or local directory of any SD-family text-to-image pipeline (SD 1.5, SD-Turbo,
    SDXL-Turbo, ...), loaded with `AutoPipelineForText2Image`."""
    num_inference_steps: int = 1
    """Denoising steps per image (1-4 for the Turbo models, 25-50 for SD 1.5)."""
    guidance_scale: float = 0.0
    """Classifier-free guidance; 0 for the Turbo models (no unconditional pass, twice as fast)."""
    height: int = 512
    """Image height in pixels."""
    width: int = 512
    """Image width in pixels."""
    chunk_size: int = 8
    """Prompts per pipeline call; lower it if the GPU runs out of memory."""
    seed: int = 0
    """Base seed that every seed mode derives the per-sample seeds from."""
    seed_mode: str = "idea"
    """"idea": a stable hash of (seed, idea), the same noise for an idea at every step;
    "slot": seed + position in the batch; "random": fresh seeds every call."""
    dtype: str = "auto"
    """"auto" (fp16 on CUDA, fp32 on CPU), "fp16", "bf16" or "fp32"."""
    device: str | None = None
    """Device to render on; None means CUDA when available, else CPU."""
    safety_checker: bool = False
    """Keep the pipeline's NSFW safety checker (it blacks out flagged images)."""
    max_prompt_tokens: int | None = None
    """Token limit incl. BOS/EOS; None means the pipeline tokenizer's `model_max_length`."""

    def __post_init__(self):
        checks.check_types(self, "render")
        checks.not_blank("render", "pipeline", self.pipeline)
        checks.at_least("render", "num_inference_steps", self.num_inference_steps, 1, 1000)
        checks.at_least("render", "guidance_scale", self.guidance_scale, 0.0)
        for name in ("height", "width"):
            value = getattr(self, name)
            if value < 8 or value % 8:
                raise UsageError(
                    f"config key 'render.{name}' must be a multiple of 8 of at least 8 pixels, got {value!r}."
                )
        checks.at_least("render", "chunk_size", self.chunk_size, 1)
        checks.at_least("render", "seed", self.seed, 0)
        checks.one_of("render", "seed_mode", self.seed_mode, SEED_MODES)
        checks.one_of("render", "dtype", self.dtype, ("auto", *DTYPES))
        if self.max_prompt_tokens is not None:
            checks.at_least("render", "max_prompt_tokens", self.max_prompt_tokens, 3)


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


def load_pipeline(name: str, dtype: torch.dtype, safety_checker: bool = False):
    """Load a text-to-image pipeline from the hub or a local directory, in `dtype`.

    In half precision the `fp16` weight files are fetched where the repository has them
    (half the download). Without `safety_checker` the checker is not even loaded (it is
    ~1 GB on SD 1.5).
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
            pipeline = load_pipeline(config.pipeline, resolve_dtype(config.dtype, self.device), config.safety_checker)
            pipeline.to(self.device)
        elif config.device is not None:
            self.device = resolve_device(config.device)
            pipeline.to(self.device)
        else:  # a pipeline built by the caller stays where it is (it may use CPU offload)
            self.device = pipeline._execution_device
        if not config.safety_checker and getattr(pipeline, "safety_checker", None) is not None:
            pipeline.safety_checker = None
        pipeline.set_progress_bar_config(disable=True)
        self.pipeline = pipeline

        self.tokenizer = getattr(pipeline, "tokenizer", None) or pipeline.tokenizer_2
        encoder_limit = self.tokenizer.model_max_length
        self.max_prompt_tokens = config.max_prompt_tokens or encoder_limit
        if not 3 <= self.max_prompt_tokens <= encoder_limit:
            raise UsageError(
                f"max_prompt_tokens must be between 3 and the text encoder's limit "
                f"({encoder_limit}), got {self.max_prompt_tokens}"
            )
        self._rng = random.Random(config.seed)

    def _n_tokens(self, texts: list[str]) -> list[int]:
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
                "%d of %d prompts exceed the text encoder's limit of %d tokens and were cut "
                "to fit (RenderOutput.truncated flags them)",
                sum(too_long),
                len(prompts),
                self.max_prompt_tokens,
            )
        return fitted, too_long

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
    ) -> RenderOutput:
        """Render `prompts` (seeded from `ideas`, or the prompts themselves, unless
        `seeds` are given) into `[batch, 3, H, W]` images in [0, 1]."""
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

        c, chunks = self.config, []
        for start in range(0, n, c.chunk_size):
            stop = start + c.chunk_size
            # CPU generators: the same seed gives the same noise on every device.
            generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds[start:stop]]
            out = self.pipeline(
                prompt=fitted[start:stop],
                num_inference_steps=c.num_inference_steps,
                guidance_scale=c.guidance_scale,
                height=c.height,
                width=c.width,
                generator=generators,
                output_type="pt",
            )
            chunks.append(out.images.to(self.device, torch.float32))
        images = torch.cat(chunks)

        pil = to_pil(images) if return_pil else None
        return RenderOutput(images, fitted, [int(s) for s in seeds], truncated, pil)


def to_pil(images: torch.Tensor) -> list[PIL.Image.Image]:
    """`[batch, 3, H, W]` floats in [0, 1] -> PIL images."""
    arr = (images.detach().float().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return [PIL.Image.fromarray(a) for a in arr]
