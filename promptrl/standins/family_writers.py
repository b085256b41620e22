"""How each family's stand-in repository is laid out, and the functions that write them.

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

from collections.abc import Callable
from pathlib import Path

import torch

from .builders import SEED, save_json, write_clip_tokenizer
from .family_parts import (
    PIXART_DPM_SOLVER,
    SANA_DPM_SOLVER,
    clip_text,
    flow_scheduler,
    gemma_tokenizer,
    rename_class,
    save_component,
    t5_encoder,
    t5_tokenizer,
    tiny_vae,
)


def write_sdxl(root: Path) -> None:
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
    vae = tiny_vae(4, scaling_factor=0.13025, force_upcast=True, sample_size=1024)
    fp = ("", "fp16")
    save_component(unet, root / "unet", fp)
    save_component(vae, root / "vae", fp)
    save_component(clip_text(False), root / "text_encoder", fp)
    save_component(clip_text(True, pad_token_id=1), root / "text_encoder_2", fp)
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


def write_flux(root: Path) -> None:
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
    vae = tiny_vae(16, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False)
    save_component(transformer, root / "transformer", shards=3)
    save_component(vae, root / "vae")
    save_component(clip_text(False, projection_dim=768), root / "text_encoder")
    save_component(t5_encoder(32), root / "text_encoder_2", shards=2)
    write_clip_tokenizer(root / "tokenizer", "<|endoftext|>")
    t5_tokenizer(root / "tokenizer_2", 512)
    flow_scheduler(
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


def write_sd3(root: Path) -> None:
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
    vae = tiny_vae(16, scaling_factor=1.5305, shift_factor=0.0609, use_quant_conv=False, use_post_quant_conv=False)
    fp = ("", "fp16")  # the text encoders only: the transformer and VAE have no fp16 files
    save_component(transformer, root / "transformer")
    save_component(vae, root / "vae")
    save_component(clip_text(True), root / "text_encoder", fp)
    save_component(clip_text(True, pad_token_id=1), root / "text_encoder_2", fp)
    save_component(t5_encoder(64), root / "text_encoder_3", fp, shards=2)
    write_clip_tokenizer(root / "tokenizer", "<|endoftext|>")
    write_clip_tokenizer(root / "tokenizer_2", "!")
    t5_tokenizer(root / "tokenizer_3", 512)
    flow_scheduler(root, "0.31.0.dev0", shift=3.0)
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


def write_pixart(root: Path) -> None:
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
    save_component(transformer, root / "transformer")
    rename_class(root / "transformer" / "config.json", "Transformer2DModel")
    save_component(tiny_vae(4, scaling_factor=0.13025, force_upcast=False), root / "vae")
    save_component(t5_encoder(32), root / "text_encoder", shards=2)
    t5_tokenizer(root / "tokenizer", 512, cls="T5Tokenizer")
    save_json(root / "scheduler" / "scheduler_config.json", PIXART_DPM_SOLVER)
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


def write_sana(root: Path) -> None:
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
    vocab = gemma_tokenizer(root / "tokenizer")
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
    save_component(transformer, root / "transformer", fp)
    save_component(vae, root / "vae", fp)
    save_component(text_encoder, root / "text_encoder", fp, shards=2)
    save_json(root / "scheduler" / "scheduler_config.json", SANA_DPM_SOLVER)
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


WRITERS: dict[str, Callable[[Path], None]] = {
    "sdxl": write_sdxl,
    "sd3": write_sd3,
    "flux": write_flux,
    "pixart": write_pixart,
    "sana": write_sana,
}
