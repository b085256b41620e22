"""The text-to-image families promptrl renders with, and what each reads of a prompt.

A family is known by its diffusers pipeline class (`model_index.json`'s `_class_name`). What
matters to a prompt generator is the text encoder that reads the whole prompt and how far it
reads: CLIP reads 77 tokens (BOS and EOS included) in SD 1.x/2.x and SDXL; T5 reads up to the
pipeline call's `max_sequence_length` in SD3/3.5 (256 by default, at most 512), FLUX.1 (512 by
default; 256 is what FLUX.1-schnell was trained with) and PixArt-Sigma (300); Sana's Gemma 2
reads 300 tokens after its built-in instruction. SD3 also runs two CLIP encoders, which cut at
77 tokens, but its T5 sees the rest; with T5 dropped (`render.drop_t5`), CLIP is all it reads.

A leaf module: it imports nothing from promptrl.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    name: str
    """Short name, as in the docs' family table ("sd", "sdxl", "sd3", "flux", "pixart", "sana")."""
    title: str
    """How errors name it."""
    pipelines: tuple[str, ...]
    """The diffusers pipeline classes of the family."""
    encoder: str
    """The text encoder that reads the whole prompt: "CLIP", "T5" or "Gemma"."""
    tokenizer: str
    """The pipeline attribute holding that encoder's tokenizer."""
    max_sequence_length: int | None = None
    """The pipeline call's default `max_sequence_length` (T5/Gemma); None: CLIP's fixed 77."""
    sequence_length_cap: int | None = None
    """The most `max_sequence_length` may be."""
    instruction_tokens: int = 0
    """Tokens of the limit the pipeline keeps for itself (Sana: its instruction's join, 1)."""
    negative_prompt: bool = True
    """Whether the pipeline renders a negative prompt (with classifier-free guidance)."""
    dtype: str = "fp16"
    """Half precision the family runs in on a GPU ("bf16" where fp16 overflows)."""
    preview_decoder: str | None = None
    """The hub name of the TAESD preview decoder for the family's latents, if there is one."""
    size_multiple: str = "vae"
    """What heights and widths must divide by: "vae" (the VAE's scale factor), "vae*patch"
    (SD3: times the transformer's patch size), "vae*2" (FLUX: latents are packed 2x2)."""
    lowercases: bool = False
    """Whether the pipeline lowercases the prompt before its tokenizer reads it (PixArt and Sana,
    with `clean_caption=False`): the token count is taken of what it reads."""


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "sd",
            "Stable Diffusion 1.x/2.x",
            ("StableDiffusionPipeline",),
            "CLIP",
            "tokenizer",
            preview_decoder="madebyollin/taesd",
        ),
        Family(
            "sdxl",
            "SDXL",
            ("StableDiffusionXLPipeline",),
            "CLIP",
            "tokenizer",
            preview_decoder="madebyollin/taesdxl",
        ),
        Family(
            "sd3",
            "SD3/3.5",
            ("StableDiffusion3Pipeline",),
            "T5",
            "tokenizer_3",
            max_sequence_length=256,
            sequence_length_cap=512,
            dtype="bf16",
            preview_decoder="madebyollin/taesd3",
            size_multiple="vae*patch",
        ),
        Family(
            "flux",
            "FLUX.1",
            ("FluxPipeline",),
            "T5",
            "tokenizer_2",
            max_sequence_length=512,
            sequence_length_cap=512,
            negative_prompt=False,
            dtype="bf16",
            preview_decoder="madebyollin/taef1",
            size_multiple="vae*2",
        ),
        Family(
            "pixart",
            "PixArt-Sigma",
            ("PixArtSigmaPipeline",),
            "T5",
            "tokenizer",
            max_sequence_length=300,
            sequence_length_cap=512,
            lowercases=True,
        ),
        Family(
            "sana",
            "Sana",
            ("SanaPipeline",),
            "Gemma",
            "tokenizer",
            max_sequence_length=300,
            sequence_length_cap=512,
            instruction_tokens=1,
            dtype="bf16",
            lowercases=True,
        ),
    )
}
"""Family name -> `Family`."""

_BY_PIPELINE = {cls: family for family in FAMILIES.values() for cls in family.pipelines}


def family_of(pipeline_class: str) -> Family:
    """The family of a diffusers pipeline class name. Any other text-to-image pipeline
    (LCM, Kandinsky, a subclass) is read as its first tokenizer's fixed limit, as SD is."""
    if pipeline_class in _BY_PIPELINE:
        return _BY_PIPELINE[pipeline_class]
    return Family("other", pipeline_class, (pipeline_class,), "CLIP", "tokenizer")
