"""An offline stand-in for the Hugging Face Hub: the repositories the real presets name.

`build_standin_hub(hf_home)` writes a Hugging Face cache (`$HF_HOME/hub`) holding
`bigscience/bloom-560m`, `gpt2`, `Qwen/Qwen2.5-0.5B-Instruct`, `stabilityai/sd-turbo`,
open_clip's ViT-L-14 `openai` weights (`timm/vit_large_patch14_clip_224.openai`) and the LAION
aesthetic predictor at the `hf://` path the presets use. With `HF_HOME` pointing there and
`HF_HUB_OFFLINE=1`, the unchanged hub names load through the libraries' own hub code
(`hf_hub_download`, `snapshot_download`), exactly as on Colab, minus the download.

Each repository holds the files, formats and configs the real one does (as published on the
hub): BLOOM's fp16 `model.safetensors` with base-model keys and its left-padding
`BloomTokenizerFast` config; GPT-2's fp32 weights, `vocab.json`/`merges.txt` and no pad
token; Qwen2.5-Instruct's bf16 weights with a tied LM head, its ChatML chat template and
`<|im_end|>` as EOS; sd-turbo's `model_index.json`, its Euler scheduler config (trailing
timesteps, `steps_offset=1`), an OpenCLIP-H-shaped `CLIPTextModel` and both the full and `fp16`
weight variants; a safetensors open_clip checkpoint; the aesthetic MLP as a pickled `.pth`
state dict (which promptrl loads with `weights_only=True`). Tokenizers are trained on the
bundled prompts (the real vocabularies are not available offline) but keep the real special
tokens, at their real ids or, past a vocabulary of 1,000, in the same place (Qwen's and GPT-2's
right after the regular tokens).

Where the library reads the architecture from a config (BLOOM, GPT-2, Qwen2, UNet, VAE, text
encoder), `size="small"` shrinks it; `size="full"` keeps the real sizes (for the CPU
real-shape smoke test and the GPU benchmark). open_clip fixes ViT-L-14 by name, so its random
weights are always real-size; they are written once, in fp16, to `weights_cache` and linked
into every hub built afterwards. All weights are random: nothing here is a trained model.

`families=(...)` adds the image-model families of `families.py` (SDXL, SD3.5, FLUX.1,
PixArt-Sigma, Sana and the TAESD decoders) under their real repository ids; `FAMILY_REPOS`
and `TAESD_REPOS` name them. `build_family_hub` writes a hub of those alone.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from ..errors import UsageError
from ..paths import build_atomically, default_weights_cache
from ..rewards.clip import AestheticMLP
from .builders import SEED, write_clip_tokenizer
from .families import (
    FAMILIES,
    FAMILY_REPOS,
    FLUX_1_SCHNELL,
    PIXART_SIGMA,
    SANA_600M_512,
    SD3_5_MEDIUM,
    SDXL_TURBO,
    TAESD_REPOS,
    build_family_hub,
    install_families,
)
from .hubcache import REVISION, install_repo, repo_dir
from .lms import save_json, write_bloom, write_gpt2, write_qwen2

BLOOM = "bigscience/bloom-560m"
GPT2 = "gpt2"
QWEN2_5_INSTRUCT = "Qwen/Qwen2.5-0.5B-Instruct"
SD_TURBO = "stabilityai/sd-turbo"
OPENCLIP_VIT_L_14 = "timm/vit_large_patch14_clip_224.openai"
AESTHETIC = ("camenduru/improved-aesthetic-predictor", "sac+logos+ava1-l14-linearMSE.pth")
SIZES = ("small", "full")

__all__ = [
    "AESTHETIC",
    "BLOOM",
    "FAMILIES",
    "FAMILY_REPOS",
    "FLUX_1_SCHNELL",
    "GPT2",
    "OPENCLIP_VIT_L_14",
    "PIXART_SIGMA",
    "QWEN2_5_INSTRUCT",
    "REVISION",
    "SANA_600M_512",
    "SD3_5_MEDIUM",
    "SDXL_TURBO",
    "SD_TURBO",
    "TAESD_REPOS",
    "build_family_hub",
    "build_standin_hub",
    "repo_dir",
    "standin_env",
    "vit_l_14_weights",
]

_SD_TURBO_INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "_diffusers_version": "0.24.0.dev0",
    "feature_extractor": [None, None],
    "image_encoder": [None, None],
    "requires_safety_checker": True,
    "safety_checker": [None, None],
    "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
_SD_TURBO_SCHEDULER = {
    "_class_name": "EulerDiscreteScheduler",
    "_diffusers_version": "0.24.0.dev0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "set_alpha_to_one": False,
    "sigma_max": None,
    "sigma_min": None,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "trailing",
    "timestep_type": "discrete",
    "trained_betas": None,
    "use_karras_sigmas": False,
}


def _write_sd_turbo(root: Path, size: str, variants: tuple[str, ...]) -> None:
    """sd-turbo: SD 2.1's architecture (OpenCLIP-H text encoder, linear-projection UNet)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(SEED)
    full = size == "full"
    text_config = CLIPTextConfig(
        vocab_size=49408,
        max_position_embeddings=77,
        hidden_act="gelu",
        projection_dim=512,
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,  # as in SD 2.x's config (the tokenizer decides)
        hidden_size=1024 if full else 32,
        intermediate_size=4096 if full else 64,
        num_hidden_layers=23 if full else 2,
        num_attention_heads=16 if full else 4,
    )
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        use_linear_projection=True,
        cross_attention_dim=text_config.hidden_size,
        layers_per_block=2 if full else 1,
        block_out_channels=(320, 640, 1280, 1280) if full else (32, 64),
        attention_head_dim=(5, 10, 20, 20) if full else (2, 4),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",)
        if full
        else ("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3 if full else ("UpBlock2D", "CrossAttnUpBlock2D"),
        norm_num_groups=32 if full else 16,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        sample_size=512,
        block_out_channels=(128, 256, 512, 512) if full else (32, 64),
        layers_per_block=2 if full else 1,
        down_block_types=("DownEncoderBlock2D",) * (4 if full else 2),
        up_block_types=("UpDecoderBlock2D",) * (4 if full else 2),
        norm_num_groups=32 if full else 16,
    )
    text_encoder = CLIPTextModel(text_config)
    for variant in variants:  # "" is the full-precision file set, "fp16" the half one
        dtype = torch.float16 if variant == "fp16" else torch.float32
        for sub, module in (("unet", unet), ("vae", vae), ("text_encoder", text_encoder)):
            module.to(dtype).save_pretrained(root / sub, safe_serialization=True, variant=variant or None)
    # The slow-tokenizer files SD 2.x ships; its tokenizer pads with "!" (id 0), not <|endoftext|>.
    write_clip_tokenizer(root / "tokenizer", pad_token="!")
    save_json(root / "scheduler" / "scheduler_config.json", _SD_TURBO_SCHEDULER)
    save_json(root / "model_index.json", _SD_TURBO_INDEX)


def vit_l_14_weights(cache: Path | None = None) -> Path:
    """Real-size random ViT-L-14 weights in open_clip's layout, fp16 safetensors, built once."""
    path = Path(cache) if cache is not None else default_weights_cache()

    def build(tmp: Path) -> None:
        import open_clip
        from safetensors.torch import save_file

        torch.manual_seed(SEED)
        model = open_clip.create_model("ViT-L-14", pretrained=None, force_quick_gelu=True)
        state = {k: v.half().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / "open_clip_model.safetensors"))

    return (
        build_atomically(path / "vit-l-14-openai", "open_clip_model.safetensors", build) / "open_clip_model.safetensors"
    )


def _write_aesthetic(root: Path) -> None:
    torch.manual_seed(SEED)
    torch.save(AestheticMLP(768).state_dict(), root / AESTHETIC[1])  # a pickled .pth, as published


def build_standin_hub(
    hf_home: str | Path,
    size: str = "small",
    weights_cache: str | Path | None = None,
    sd_variants: tuple[str, ...] = ("", "fp16"),
    families: tuple[str, ...] = (),
) -> Path:
    """Write the stand-in hub to `hf_home/hub` (once: a finished one is reused); returns `hf_home`.

    Point `HF_HOME` at the result, with `HF_HUB_OFFLINE=1`, before anything imports
    `huggingface_hub` (it reads both at import). `sd_variants` chooses sd-turbo's weight
    files: `""` the full-precision ones (CPU), `"fp16"` the half ones (what CUDA loads).
    `families` adds image-model families (`families.FAMILIES`: "sdxl", "sd3", "flux",
    "pixart", "sana"; "sd" adds only sd-turbo's TAESD), each with its TAESD decoder, at tiny
    sizes whatever `size` says. A hub already built under `hf_home` is reused; one that lacks
    a requested family is refused rather than silently served without it.
    """
    if size not in SIZES:
        raise UsageError(f"size must be one of {SIZES}, got {size!r}")
    built = Path(hf_home) / "STANDIN"
    if built.exists():
        missing = sorted(set(families) - set(json.loads(built.read_text()).get("families", [])))
        if missing:
            raise UsageError(
                f"the stand-in hub at {hf_home} was built without the families {missing}; "
                "build one with them in a fresh directory (pass families= on the first build)"
            )
    vit = vit_l_14_weights(Path(weights_cache) if weights_cache is not None else None)

    def build(tmp: Path) -> None:
        hub = tmp / "hub"
        install_repo(hub, BLOOM, lambda root: write_bloom(root, size))
        install_repo(hub, GPT2, lambda root: write_gpt2(root, size))
        install_repo(hub, QWEN2_5_INSTRUCT, lambda root: write_qwen2(root, size))
        install_repo(hub, SD_TURBO, lambda root: _write_sd_turbo(root, size, sd_variants))
        install_repo(hub, AESTHETIC[0], _write_aesthetic)
        # A link, like the hub cache's own snapshot -> blob links: the 0.9 GB file exists once.
        install_repo(hub, OPENCLIP_VIT_L_14, lambda root: _link(vit, root / "open_clip_model.safetensors"))
        install_families(hub, families)
        manifest = {"size": size, "sd_variants": list(sd_variants), "families": list(families)}
        (tmp / "STANDIN").write_text(json.dumps(manifest))

    return build_atomically(hf_home, "STANDIN", build)


def _link(src: Path, dst: Path) -> None:
    try:
        os.symlink(Path(src).resolve(), dst)
    except OSError:
        shutil.copyfile(src, dst)


def standin_env(hf_home: str | Path) -> dict[str, str]:
    """Environment variables that make a process load the hub names from a stand-in hub."""
    return {
        "HF_HOME": str(hf_home),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
