"""The image-model families of 2026 in the stand-in hub, each under its real repository id.

`install_families(hub_cache, families)` writes the chosen families' repositories into a
Hugging Face cache (`build_standin_hub(..., families=...)` calls it; `build_family_hub`
writes a hub of families alone). With `HF_HOME` there and `HF_HUB_OFFLINE=1`,
`AutoPipelineForText2Image.from_pretrained(FAMILY_REPOS[family])` loads each through
diffusers' own hub code. Weights are random; widths and depths are shrunk so a family builds
in seconds, but what a caller can observe stays real: the pipeline and component classes
in `model_index.json`, the scheduler class and config values, the latent channels (so the
TAESD decoders fit), the VAE's 8x downsampling (SD, SDXL, SD3, FLUX, PixArt), the tokenizers'
kinds, special tokens, vocabulary sizes and `model_max_length`, the file names (sharded
`*.safetensors.index.json` where the real repo shards, `fp16` variants where it has them).

`family_writers.py` writes each repository and notes its layout, as seen or recalled.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from ..errors import UsageError
from ..paths import build_atomically
from .family_parts import write_taesd
from .family_writers import WRITERS
from .hubcache import install_repo

SDXL_TURBO = "stabilityai/sdxl-turbo"
SD3_5_MEDIUM = "stabilityai/stable-diffusion-3.5-medium"
FLUX_1_SCHNELL = "black-forest-labs/FLUX.1-schnell"
PIXART_SIGMA = "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS"
SANA_600M_512 = "Efficient-Large-Model/Sana_600M_512px_diffusers"

FAMILY_REPOS = {
    "sd": "stabilityai/sd-turbo",
    "sdxl": SDXL_TURBO,
    "sd3": SD3_5_MEDIUM,
    "flux": FLUX_1_SCHNELL,
    "pixart": PIXART_SIGMA,
    "sana": SANA_600M_512,
}
"""One real repository per family; `"sd"` (sd-turbo) is `build_standin_hub`'s own."""

TAESD_REPOS = {
    "sd": "madebyollin/taesd",
    "sdxl": "madebyollin/taesdxl",
    "sd3": "madebyollin/taesd3",
    "flux": "madebyollin/taef1",
}
"""The TAESD preview decoder (`AutoencoderTiny`) of each family that has one."""

LATENT_CHANNELS = {"sd": 4, "sdxl": 4, "sd3": 16, "flux": 16, "pixart": 4, "sana": 32}
FAMILIES = ("sdxl", "sd3", "flux", "pixart", "sana")
"""The families `install_families` writes (sd-turbo is written by `build_standin_hub`)."""


def install_families(hub_cache: str | Path, families: Iterable[str] = FAMILIES, taesd: bool = True) -> None:
    """Write each family's repository (and, with `taesd`, its TAESD decoder) into `hub_cache`."""
    families = tuple(families)
    unknown = sorted(set(families) - set(WRITERS) - {"sd"})
    if unknown:
        raise UsageError(f"unknown families {unknown}; choose from {('sd', *FAMILIES)}")
    for family in families:
        if family != "sd":
            install_repo(Path(hub_cache), FAMILY_REPOS[family], WRITERS[family])
        if taesd and family in TAESD_REPOS:
            install_repo(Path(hub_cache), TAESD_REPOS[family], write_taesd(LATENT_CHANNELS[family]))


def build_family_hub(hf_home: str | Path, families: Iterable[str] = FAMILIES) -> Path:
    """A stand-in hub (`hf_home/hub`) of the chosen families alone, built once; returns `hf_home`."""
    families = tuple(families)
    return build_atomically(
        hf_home,
        "STANDIN_FAMILIES",
        lambda tmp: (
            install_families(tmp / "hub", families),
            (tmp / "STANDIN_FAMILIES").write_text(json.dumps(sorted(families))),
        ),
    )
