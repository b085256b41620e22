"""What to render and how (`RenderConfig`, the `render:` section), and which of those options a
pipeline's family can take: one-line errors naming the key, told from the family before any
weights load (`check_family_options`) and from the loaded pipeline (`check_pipeline_options`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import checks
from .devices import DTYPES, resolve_dtype
from .errors import UsageError
from .families import Family

SEED_MODES = ("idea", "slot", "random")
OFFLOADS = ("none", "model", "sequential")
DECODERS = ("full", "taesd")


@dataclass
class RenderConfig:
    pipeline: str = "stabilityai/sd-turbo"
    """Hub name or local directory of a text-to-image pipeline (SD 1.x/2.x, SDXL, SD3/3.5, FLUX.1,
    PixArt-Sigma, Sana, ...), loaded with `AutoPipelineForText2Image`."""
    num_inference_steps: int = 1
    """Denoising steps per image (1-4 for the Turbo models, 25-50 for SD 1.5)."""
    guidance_scale: float = 0.0
    """Classifier-free guidance; 0 for the Turbo models and FLUX.1-schnell (no unconditional
    pass, twice as fast); FLUX.1-dev embeds it instead (3.5)."""
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
    """"auto" (on CUDA the family's half precision: bf16 for SD3, FLUX and Sana, else fp16;
    fp32 on CPU), "fp16", "bf16" or "fp32"."""
    device: str | None = None
    """Device to render on; None means CUDA when available, else CPU."""
    safety_checker: bool = False
    """Keep the pipeline's NSFW safety checker (it blacks out flagged images)."""
    max_prompt_tokens: int | None = None
    """A token limit below the prompt encoder's (special tokens included); None: the encoder's."""
    max_sequence_length: int | None = None
    """Tokens the T5 or Gemma encoder reads (SD3/3.5, FLUX.1, PixArt-Sigma, Sana; at most 512);
    None: the pipeline's default (SD3 256, FLUX 512, PixArt-Sigma and Sana 300)."""
    negative_prompt: str = ""
    """What to steer away from; needs classifier-free guidance (guidance_scale > 1), not FLUX.1."""
    offload: str = "none"
    """CUDA only. "model": diffusers' model CPU offload (each component on the GPU only while it
    runs); "sequential": layer by layer (least memory, far slower); "none": all on the GPU."""
    vae_slicing: bool = False
    """Decode a chunk one image at a time: less memory for large `chunk_size`."""
    vae_tiling: bool = False
    """Decode each image in overlapping tiles: less memory for large images."""
    drop_t5: bool = False
    """SD3/3.5 only: load without the T5 encoder (about 9 GB less in fp16); prompts are then
    read by CLIP alone, 77 tokens."""
    vae: str = "full"
    """Decoder of training renders: "full" (the pipeline's VAE) or "taesd" (the family's tiny
    TAESD preview decoder, for SD, SDXL, SD3 and FLUX latents). Evaluation and the app always
    decode with the full VAE."""
    preview_decoder: str | None = None
    """Hub name or local directory of the preview decoder; None: the family's TAESD."""

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
        if self.max_sequence_length is not None:
            checks.at_least("render", "max_sequence_length", self.max_sequence_length, 3, 512)
        checks.one_of("render", "offload", self.offload, OFFLOADS)
        checks.one_of("render", "vae", self.vae, DECODERS)


def family_dtype(config: RenderConfig, family: Family, device: torch.device) -> torch.dtype:
    if config.dtype == "auto" and device.type == "cuda":
        return DTYPES[family.dtype]
    return resolve_dtype(config.dtype, device)


def check_family_options(config: RenderConfig, family: Family, device: torch.device) -> None:
    """The render options `family` cannot take, as one-line errors naming the key: what can be
    told from the pipeline's class alone, before any weights load."""
    t = family.title
    if config.drop_t5 and family.name != "sd3":
        raise UsageError(f"config key 'render.drop_t5' applies to SD3/3.5 only; {t} has no T5 to drop: remove it")
    reads_clip = family.max_sequence_length is None or config.drop_t5
    if config.max_sequence_length is not None:
        if reads_clip:
            raise UsageError(
                f"config key 'render.max_sequence_length' does not apply: {t} reads prompts with CLIP "
                f"(77 tokens){' once T5 is dropped' if config.drop_t5 else ''}; remove it"
            )
        if config.max_sequence_length > family.sequence_length_cap:
            raise UsageError(
                f"config key 'render.max_sequence_length' must be at most {family.sequence_length_cap} "
                f"for {t}, got {config.max_sequence_length}"
            )
    if config.negative_prompt:
        if not family.negative_prompt:
            raise UsageError(f"config key 'render.negative_prompt': {t} takes no negative prompt here; remove it")
        if config.guidance_scale <= 1:
            raise UsageError(
                "config key 'render.negative_prompt' has no effect with guidance_scale <= 1 (no "
                "unconditional pass); raise render.guidance_scale above 1 or remove the negative prompt"
            )
    if config.offload != "none" and device.type != "cuda":
        raise UsageError(
            f"config key 'render.offload: {config.offload}' needs a CUDA GPU (it moves components "
            f"between CPU and GPU) but renders run on {device.type}; set render.offload: none"
        )
    if config.vae == "taesd" and config.preview_decoder is None and family.preview_decoder is None:
        raise UsageError(
            f"config key 'render.vae: taesd': there is no TAESD decoder for {t} latents; set "
            "render.vae: full (or name one in render.preview_decoder)"
        )


def _size_multiple(pipeline, family: Family) -> int:
    factor = int(getattr(pipeline, "vae_scale_factor", 8))
    if family.size_multiple == "vae*patch":
        return factor * int(pipeline.transformer.config.patch_size)
    if family.size_multiple == "vae*2":
        return factor * 2
    return factor


def check_pipeline_options(config: RenderConfig, family: Family, pipeline) -> None:
    """The render options the loaded `pipeline` cannot take: sizes its latents cannot hold, and
    guidance on a guidance-distilled FLUX.1 (schnell), which would silently ignore it."""
    multiple = _size_multiple(pipeline, family)
    for name in ("height", "width"):
        value = getattr(config, name)
        if value % multiple:
            raise UsageError(
                f"config key 'render.{name}' must be a multiple of {multiple} for {family.title}, "
                f"got {value}; try {max(multiple, round(value / multiple) * multiple)}"
            )
    transformer = getattr(pipeline, "transformer", None)
    if family.name == "flux" and config.guidance_scale and not transformer.config.guidance_embeds:
        raise UsageError(
            "config key 'render.guidance_scale' must be 0 for this FLUX.1 model: it is "
            "guidance-distilled (schnell) and ignores guidance; set render.guidance_scale: 0"
        )
