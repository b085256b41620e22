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

Layouts, as published on the hub. This machine cannot reach the hub; "seen" marks what was
read in stored copies of the hub's file listings and configs (2026-12), the rest is from
memory of the repos and of diffusers' docs and pipelines:

- `stabilityai/sdxl-turbo`: `StableDiffusionXLPipeline`; `text_encoder` `CLIPTextModel`
  (CLIP ViT-L), `text_encoder_2` `CLIPTextModelWithProjection` (OpenCLIP bigG), both
  `CLIPTokenizer` at 77 tokens (`tokenizer` pads with `<|endoftext|>`, `tokenizer_2` with
  `!`); `EulerAncestralDiscreteScheduler`, trailing timesteps, `steps_offset=1`; VAE
  `scaling_factor=0.13025`, 4 latent channels; full and `fp16` weights for unet, vae and
  both text encoders, unsharded. (Not seen.)
- `stabilityai/stable-diffusion-3.5-medium`: `StableDiffusion3Pipeline`; two
  `CLIPTextModelWithProjection` (`tokenizer`, `tokenizer_2`, 77) and `T5EncoderModel`
  (`text_encoder_3`) with `tokenizer_3` a `T5TokenizerFast` (`model_max_length=512`, not
  seen); `SD3Transformer2DModel` with dual attention and RMS qk-norm;
  `FlowMatchEulerDiscreteScheduler` with `shift=3.0` (not seen); VAE 16 latent channels,
  `scaling_factor=1.5305`, `shift_factor=0.0609`, no quant convs. Seen (in mirrors of the
  repo): `text_encoder`/`text_encoder_2` as `model.safetensors` + `model.fp16.safetensors`;
  `text_encoder_3` in 2 shards, full and fp16 (`model.fp16-0000k-of-00002.safetensors`,
  `model.safetensors.index.fp16.json`); transformer and vae one full-precision file each,
  no fp16. So `variant="fp16"` loads fp16 text encoders and the full transformer and VAE.
- `black-forest-labs/FLUX.1-schnell`: `FluxPipeline`; `CLIPTextModel` + `CLIPTokenizer` (77),
  `T5EncoderModel` (`text_encoder_2`, 2 shards) + `T5TokenizerFast` (`tokenizer_2`, 512);
  `FluxTransformer2DModel` without guidance embeddings (3 shards); no `fp16` files; VAE 16
  latent channels, `scaling_factor=0.3611`, `shift_factor=0.1159` (not seen). Seen: the
  scheduler config (`FlowMatchEulerDiscreteScheduler`, `shift=1.0`, no dynamic shifting,
  diffusers 0.30.0.dev0).
- `PixArt-alpha/PixArt-Sigma-XL-2-1024-MS`: `PixArtSigmaPipeline`; `T5EncoderModel` (2
  shards, not seen) + `T5Tokenizer`; the transformer as `Transformer2DModel` (what
  diffusers 0.28 saved; today's diffusers remaps it to `PixArtTransformer2DModel`) with
  `sample_size=128`, so the pipeline's resolution binning picks the 1024 bins: pass
  `use_resolution_binning=False` to render small; `DPMSolverMultistepScheduler`; the SDXL
  VAE (4 latent channels). Seen: `tokenizer/` holds `spiece.model`, `special_tokens_map.json`
  and `tokenizer_config.json` (a slow sentencepiece tokenizer; here a `tokenizer.json`
  stands in for `spiece.model`); the T5 config (fp16, `vocab_size=32128`). Not seen: the
  tokenizer's `model_max_length` (512, T5's, is written; the pipeline encodes 300 tokens)
  and whether the repo has `fp16` files (none written).
- `Efficient-Large-Model/Sana_600M_512px_diffusers`: `SanaPipeline`; `Gemma2Model`
  (gemma-2-2b-it, 256,000 tokens) + `GemmaTokenizerFast` (`<bos>` added; the pipeline pads
  on the right whatever the config says; the config's left padding and unbounded
  `model_max_length` are gemma-2's, not seen); `SanaTransformer2DModel` with
  `sample_size=16` (512 bins: pass `use_resolution_binning=False` to render small);
  `AutoencoderDC` with 32 latent channels and 32x downsampling. Seen, for the sibling
  `Sana_1600M_512px_diffusers`: the `model_index.json` classes, the scheduler config
  (`DPMSolverMultistepScheduler`, flow sigmas, `flow_prediction`, `flow_shift=3.0`), the text
  encoder in 2 shards full and fp16, the transformer with an fp16 file. The 600M repo is
  assumed laid out alike (its transformer unsharded; fp16 files for transformer, VAE and
  text encoder: the VAE's fp16 file is a guess).
- `madebyollin/taesd`, `taesdxl`, `taesd3`, `taef1`: `AutoencoderTiny` at their real (small)
  size, `config.json` + `diffusion_pytorch_model.safetensors`, 4, 4, 16 and 16 latent
  channels. (Not seen.)

Tokenizers: CLIP is the real 49,408-token BPE (open_clip's copy). T5 and Gemma cannot be
rebuilt offline, so they are trained stand-ins: a Unigram (T5, 32,100 tokens with the 100
`<extra_id_*>` tokens) and a byte-fallback BPE (Gemma, 256,000 tokens) holding the bundled
prompts' words whole, so prompts count about as many tokens as with the real ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from ..errors import UsageError
from ..paths import build_atomically
from .builders import SEED, _policy_corpus, save_json, write_clip_tokenizer
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

T5_VOCAB = 32100  # 32,000 sentencepiece pieces + 100 <extra_id_*>; the model's embedding has 32,128
GEMMA_VOCAB = 256000


_PIXART_DPM_SOLVER = {
    "_class_name": "DPMSolverMultistepScheduler",
    "_diffusers_version": "0.28.0.dev0",
    "algorithm_type": "dpmsolver++",
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "beta_start": 0.0001,
    "dynamic_thresholding_ratio": 0.995,
    "euler_at_final": False,
    "lambda_min_clipped": -float("inf"),
    "lower_order_final": True,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "solver_order": 2,
    "solver_type": "midpoint",
    "steps_offset": 0,
    "thresholding": False,
    "timestep_spacing": "linspace",
    "trained_betas": None,
    "use_karras_sigmas": False,
    "use_lu_lambdas": False,
    "variance_type": None,
}
_SANA_DPM_SOLVER = {  # the same solver on flow-matching sigmas (as seen in Sana_1600M_512px_diffusers)
    **_PIXART_DPM_SOLVER,
    "_diffusers_version": "0.32.0.dev0",
    "final_sigmas_type": "zero",
    "flow_shift": 3.0,
    "prediction_type": "flow_prediction",
    "rescale_betas_zero_snr": False,
    "use_beta_sigmas": False,
    "use_exponential_sigmas": False,
    "use_flow_sigmas": True,
}


# --------------------------------------------------------------------------- files


def _save(module, folder: Path, variants: Iterable[str] = ("",), shards: int = 1) -> None:
    """`save_pretrained` one component per variant ("" full precision, "fp16" half); with
    `shards > 1`, split its weights into that many files plus the index the libraries read."""
    for variant in sorted(variants, reverse=True):  # full precision last: its config.json stays
        dtype = torch.float16 if variant == "fp16" else torch.float32
        module.to(dtype).save_pretrained(folder, safe_serialization=True, variant=variant or None)
    if shards > 1:
        _shard(folder, shards)
    module.to(torch.float32)


def _shard(folder: Path, shards: int) -> None:
    """Split each weights file (`model[.fp16].safetensors`, `diffusion_pytorch_model[.fp16]...`)
    into `shards` files, named and indexed as the libraries' `save_pretrained` names them:
    `model.fp16-00001-of-00002.safetensors`, `model.safetensors.index.fp16.json`."""
    from safetensors.torch import load_file, save_file

    for single in sorted(folder.glob("*.safetensors")):
        stem = single.name[: -len(".safetensors")]  # "model" or "model.fp16"
        base, _, variant = stem.partition(".")
        state = load_file(single)
        names = list(state)
        total = sum(t.numel() * t.element_size() for t in state.values())
        weight_map, start = {}, 0
        for i in range(shards):
            end = len(names) * (i + 1) // shards
            file = f"{stem}-{i + 1:05d}-of-{shards:05d}.safetensors"
            save_file({k: state[k] for k in names[start:end]}, folder / file, metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(names[start:end], file))
            start = end
        single.unlink()
        index = f"{base}.safetensors.index{'.' + variant if variant else ''}.json"
        save_json(folder / index, {"metadata": {"total_size": total}, "weight_map": weight_map})


def _rename_class(config: Path, name: str) -> None:
    """Set a saved config's `_class_name` (a repo saved by an older diffusers names an older class)."""
    data = json.loads(config.read_text())
    save_json(config, {**data, "_class_name": name})


def _corpus_words() -> list[str]:
    counts: dict[str, int] = {}
    for text in _policy_corpus():
        for word in re.findall(r"[A-Za-z]+|[0-9]+|[^\sA-Za-z0-9]", text.lower()):
            counts[word] = counts.get(word, 0) + 1
    return sorted(counts, key=lambda w: (-counts[w], w))


def _t5_tokenizer(folder: Path, model_max_length: int, cls: str = "T5TokenizerFast") -> int:
    """A T5 Unigram tokenizer (32,100 tokens: `<pad>` 0, `</s>` 1, `<unk>` 2, pieces, then
    `<extra_id_99..0>`) holding the corpus' words whole; returns its length."""
    from transformers import T5Tokenizer

    words = _corpus_words()
    chars = sorted({c for w in words for c in w})
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(c, -10.0) for c in chars] + [("\u2581" + c, -9.0) for c in chars]
    seen = {p for p, _ in pieces}
    for rank, word in enumerate(words):
        if "\u2581" + word not in seen and len(word) > 1:
            pieces.append(("\u2581" + word, -5.0 - rank * 1e-4))
            seen.add("\u2581" + word)
    # Unused pieces up to the real vocabulary size, so ids and lengths span T5's range.
    pieces += [(f"\u2581\u2063{i}", -30.0) for i in range(T5_VOCAB - 100 - len(pieces))]
    pieces += [(f"<extra_id_{i}>", 0.0) for i in range(99, -1, -1)]
    tokenizer = T5Tokenizer(vocab=pieces, extra_ids=100, model_max_length=model_max_length, legacy=True)
    tokenizer.save_pretrained(folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["tokenizer_class"] = cls
    save_json(folder / "tokenizer_config.json", config)
    return len(tokenizer)


def _gemma_tokenizer(folder: Path) -> int:
    """A Gemma byte-fallback BPE (256,000 tokens: `<pad>` 0, `<eos>` 1, `<bos>` 2, `<unk>` 3,
    `<mask>` 4, byte tokens, pieces) holding the corpus' words whole; returns its length."""
    from transformers import GemmaTokenizer

    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"])}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    merges: list[tuple[str, str]] = []
    seen_merges = set()

    def add(token: str) -> None:
        vocab.setdefault(token, len(vocab))

    for word in _corpus_words():
        symbols = ["\u2581"] + list(word)
        for s in symbols:
            add(s)
        piece = symbols[0]
        for s in symbols[1:]:
            if (piece, s) not in seen_merges:
                seen_merges.add((piece, s))
                merges.append((piece, s))
            piece += s
            add(piece)
    for i in range(GEMMA_VOCAB - len(vocab)):
        vocab[f"<unused{i}>"] = len(vocab)
    tokenizer = GemmaTokenizer(
        vocab=vocab,
        merges=merges,
        add_bos_token=True,
        add_eos_token=False,
        padding_side="left",
        model_max_length=int(1e30),
    )
    tokenizer.save_pretrained(folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["tokenizer_class"] = "GemmaTokenizer"
    save_json(folder / "tokenizer_config.json", config)
    return len(tokenizer)


def _clip_text(projection: bool, hidden: int = 32, projection_dim: int = 32, pad_token_id: int = 49407):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=49408,
        max_position_embeddings=77,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        projection_dim=projection_dim,
        hidden_act="gelu",
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=pad_token_id,
    )
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def _t5_encoder(d_model: int = 32):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(
        T5Config(
            vocab_size=32128,
            d_model=d_model,
            d_kv=8,
            d_ff=2 * d_model,
            num_layers=1,
            num_heads=4,
            feed_forward_proj="gated-gelu",  # T5 v1.1 (the xxl encoder these pipelines use)
            relative_attention_num_buckets=32,
            is_encoder_decoder=False,
            use_cache=False,
        )
    )


def _vae(latent_channels: int, **config):
    """A 4-level `AutoencoderKL` (8x downsampling, as the real ones) of width 8..16."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=latent_channels,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        norm_num_groups=8,
        **config,
    )


# --------------------------------------------------------------------------- families


def _write_sdxl(root: Path) -> None:
    from diffusers import UNet2DConditionModel

    torch.manual_seed(SEED)
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        cross_attention_dim=64,  # text_encoder (32) + text_encoder_2 (32), concatenated
        addition_embed_type="text_time",
        addition_embed_type_num_heads=64,
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 32,  # six size/crop ids + pooled text
        norm_num_groups=16,
    )
    vae = _vae(4, scaling_factor=0.13025, force_upcast=True, sample_size=1024)
    fp = ("", "fp16")
    _save(unet, root / "unet", fp)
    _save(vae, root / "vae", fp)
    _save(_clip_text(False), root / "text_encoder", fp)
    _save(_clip_text(True, pad_token_id=1), root / "text_encoder_2", fp)
    write_clip_tokenizer(root / "tokenizer", "<|endoftext|>")
    write_clip_tokenizer(root / "tokenizer_2", "!")
    save_json(
        root / "scheduler" / "scheduler_config.json",
        {
            "_class_name": "EulerAncestralDiscreteScheduler",
            "_diffusers_version": "0.24.0.dev0",
            "beta_end": 0.012,
            "beta_schedule": "scaled_linear",
            "beta_start": 0.00085,
            "clip_sample": False,
            "interpolation_type": "linear",
            "num_train_timesteps": 1000,
            "prediction_type": "epsilon",
            "sample_max_value": 1.0,
            "set_alpha_to_one": False,
            "skip_prk_steps": True,
            "steps_offset": 1,
            "timestep_spacing": "trailing",
            "trained_betas": None,
            "use_karras_sigmas": False,
        },
    )
    save_json(
        root / "model_index.json",
        {
            "_class_name": "StableDiffusionXLPipeline",
            "_diffusers_version": "0.24.0.dev0",
            "feature_extractor": [None, None],
            "force_zeros_for_empty_prompt": True,
            "image_encoder": [None, None],
            "scheduler": ["diffusers", "EulerAncestralDiscreteScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "tokenizer_2": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        },
    )


def _flow_scheduler(root: Path, version: str, **config) -> None:
    save_json(
        root / "scheduler" / "scheduler_config.json",
        {
            "_class_name": "FlowMatchEulerDiscreteScheduler",
            "_diffusers_version": version,
            "num_train_timesteps": 1000,
            **config,
        },
    )


def _write_flux(root: Path) -> None:
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(SEED)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,  # 16 latent channels, packed 2x2
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,  # the T5 encoder's width
        pooled_projection_dim=32,  # the CLIP encoder's width
        guidance_embeds=False,  # schnell is timestep-distilled, without guidance
        axes_dims_rope=(4, 6, 6),
    )
    vae = _vae(16, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False)
    _save(transformer, root / "transformer", shards=3)
    _save(vae, root / "vae")
    _save(_clip_text(False, projection_dim=768), root / "text_encoder")
    _save(_t5_encoder(32), root / "text_encoder_2", shards=2)
    write_clip_tokenizer(root / "tokenizer", "<|endoftext|>")
    _t5_tokenizer(root / "tokenizer_2", 512)
    _flow_scheduler(
        root,
        "0.30.0.dev0",
        shift=1.0,
        use_dynamic_shifting=False,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    save_json(
        root / "model_index.json",
        {
            "_class_name": "FluxPipeline",
            "_diffusers_version": "0.30.0.dev0",
            "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "text_encoder_2": ["transformers", "T5EncoderModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "tokenizer_2": ["transformers", "T5TokenizerFast"],
            "transformer": ["diffusers", "FluxTransformer2DModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        },
    )


def _write_sd3(root: Path) -> None:
    from diffusers import SD3Transformer2DModel

    torch.manual_seed(SEED)
    transformer = SD3Transformer2DModel(
        sample_size=128,
        patch_size=2,
        in_channels=16,
        out_channels=16,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=64,  # the T5 encoder's width (CLIP's 32 + 32 are padded up to it)
        caption_projection_dim=32,
        pooled_projection_dim=64,  # both CLIP projections, concatenated
        pos_embed_max_size=384,
        dual_attention_layers=(0,),
        qk_norm="rms_norm",
    )
    vae = _vae(16, scaling_factor=1.5305, shift_factor=0.0609, use_quant_conv=False, use_post_quant_conv=False)
    fp = ("", "fp16")  # the text encoders only: the transformer and VAE have no fp16 files
    _save(transformer, root / "transformer")
    _save(vae, root / "vae")
    _save(_clip_text(True), root / "text_encoder", fp)
    _save(_clip_text(True, pad_token_id=1), root / "text_encoder_2", fp)
    _save(_t5_encoder(64), root / "text_encoder_3", fp, shards=2)
    write_clip_tokenizer(root / "tokenizer", "<|endoftext|>")
    write_clip_tokenizer(root / "tokenizer_2", "!")
    _t5_tokenizer(root / "tokenizer_3", 512)
    _flow_scheduler(root, "0.31.0.dev0", shift=3.0)
    save_json(
        root / "model_index.json",
        {
            "_class_name": "StableDiffusion3Pipeline",
            "_diffusers_version": "0.31.0.dev0",
            "feature_extractor": [None, None],
            "image_encoder": [None, None],
            "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
            "text_encoder": ["transformers", "CLIPTextModelWithProjection"],
            "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
            "text_encoder_3": ["transformers", "T5EncoderModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "tokenizer_2": ["transformers", "CLIPTokenizer"],
            "tokenizer_3": ["transformers", "T5TokenizerFast"],
            "transformer": ["diffusers", "SD3Transformer2DModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        },
    )


def _write_pixart(root: Path) -> None:
    from diffusers import PixArtTransformer2DModel

    torch.manual_seed(SEED)
    transformer = PixArtTransformer2DModel(
        sample_size=128,
        num_layers=1,
        patch_size=2,
        attention_head_dim=8,
        num_attention_heads=2,
        in_channels=4,
        out_channels=8,  # learned sigma
        cross_attention_dim=16,
        caption_channels=32,  # the T5 encoder's width
        norm_type="ada_norm_single",
        norm_elementwise_affine=False,
        norm_eps=1e-6,
        use_additional_conditions=False,
        interpolation_scale=2,
    )
    _save(transformer, root / "transformer")
    _rename_class(root / "transformer" / "config.json", "Transformer2DModel")
    _save(_vae(4, scaling_factor=0.13025, force_upcast=False), root / "vae")
    _save(_t5_encoder(32), root / "text_encoder", shards=2)
    _t5_tokenizer(root / "tokenizer", 512, cls="T5Tokenizer")
    save_json(root / "scheduler" / "scheduler_config.json", _PIXART_DPM_SOLVER)
    save_json(
        root / "model_index.json",
        {
            "_class_name": "PixArtSigmaPipeline",
            "_diffusers_version": "0.28.0.dev0",
            "scheduler": ["diffusers", "DPMSolverMultistepScheduler"],
            "text_encoder": ["transformers", "T5EncoderModel"],
            "tokenizer": ["transformers", "T5Tokenizer"],
            "transformer": ["diffusers", "Transformer2DModel"],  # diffusers remaps it by norm_type
            "vae": ["diffusers", "AutoencoderKL"],
        },
    )


def _write_sana(root: Path) -> None:
    from diffusers import AutoencoderDC, SanaTransformer2DModel
    from transformers import Gemma2Config, Gemma2Model

    torch.manual_seed(SEED)
    transformer = SanaTransformer2DModel(
        in_channels=32,
        out_channels=32,
        num_attention_heads=2,
        attention_head_dim=4,
        num_layers=1,
        num_cross_attention_heads=2,
        cross_attention_head_dim=4,
        cross_attention_dim=8,
        caption_channels=16,  # the Gemma encoder's width
        mlp_ratio=2.5,
        sample_size=16,
        patch_size=1,
    )
    vae = AutoencoderDC(
        in_channels=3,
        latent_channels=32,
        attention_head_dim=2,
        encoder_block_types=("ResBlock",) * 3 + ("EfficientViTBlock",) * 3,
        decoder_block_types=("ResBlock",) * 3 + ("EfficientViTBlock",) * 3,
        encoder_block_out_channels=(8, 8, 16, 16, 32, 32),  # the last one holds the 32 latent channels
        decoder_block_out_channels=(8, 8, 16, 16, 32, 32),
        encoder_qkv_multiscales=((), (), (), (5,), (5,), (5,)),
        decoder_qkv_multiscales=((), (), (), (5,), (5,), (5,)),
        encoder_layers_per_block=(1,) * 6,
        decoder_layers_per_block=(1,) * 6,
        downsample_block_type="conv",
        upsample_block_type="interpolate",
        decoder_norm_types="rms_norm",
        decoder_act_fns="silu",
        scaling_factor=0.41407,
    )
    vocab = _gemma_tokenizer(root / "tokenizer")
    text_encoder = Gemma2Model(
        Gemma2Config(
            vocab_size=vocab,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=8,
            pad_token_id=0,
            eos_token_id=1,
            bos_token_id=2,
        )
    )
    fp = ("", "fp16")
    _save(transformer, root / "transformer", fp)
    _save(vae, root / "vae", fp)
    _save(text_encoder, root / "text_encoder", fp, shards=2)
    save_json(root / "scheduler" / "scheduler_config.json", _SANA_DPM_SOLVER)
    save_json(
        root / "model_index.json",
        {
            "_class_name": "SanaPipeline",
            "_diffusers_version": "0.32.0.dev0",
            "scheduler": ["diffusers", "DPMSolverMultistepScheduler"],
            "text_encoder": ["transformers", "Gemma2Model"],
            "tokenizer": ["transformers", "GemmaTokenizerFast"],
            "transformer": ["diffusers", "SanaTransformer2DModel"],
            "vae": ["diffusers", "AutoencoderDC"],
        },
    )


def _write_taesd(latent_channels: int) -> Callable[[Path], None]:
    def write(root: Path) -> None:
        from diffusers import AutoencoderTiny

        torch.manual_seed(SEED)
        AutoencoderTiny(latent_channels=latent_channels).save_pretrained(root, safe_serialization=True)

    return write


_WRITERS: dict[str, Callable[[Path], None]] = {
    "sdxl": _write_sdxl,
    "sd3": _write_sd3,
    "flux": _write_flux,
    "pixart": _write_pixart,
    "sana": _write_sana,
}


def install_families(hub_cache: str | Path, families: Iterable[str] = FAMILIES, taesd: bool = True) -> None:
    """Write each family's repository (and, with `taesd`, its TAESD decoder) into `hub_cache`."""
    families = tuple(families)
    unknown = sorted(set(families) - set(_WRITERS) - {"sd"})
    if unknown:
        raise UsageError(f"unknown families {unknown}; choose from {('sd', *FAMILIES)}")
    for family in families:
        if family != "sd":
            install_repo(Path(hub_cache), FAMILY_REPOS[family], _WRITERS[family])
        if taesd and family in TAESD_REPOS:
            install_repo(Path(hub_cache), TAESD_REPOS[family], _write_taesd(LATENT_CHANNELS[family]))


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
