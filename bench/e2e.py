"""Seconds per PPO step by stage (generate, render, score, optimise) of the whole image loop.

    python bench/e2e.py                 # the tiny preset on this machine
    python bench/e2e.py --gpu           # real architectures, random weights, 64 ideas at 512x512

`--gpu` builds randomly initialised models with the real architectures from their configs
(bloom-560m, sd-turbo's UNet / VAE / OpenCLIP-H text encoder, ViT-L-14 for the scorers), so it
needs no hub access; it runs the bloom-560m preset's settings and prints time per stage and
peak GPU memory. `--device cpu --size 64 --ideas 2` smoke-tests that path on a CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
from pathlib import Path

import torch

from promptrl.config import load_config
from promptrl.trainer import PromptTrainer

STAGES = ("time/generate", "time/render", "time/score", "time/optimize")


def build_real_architectures(root: Path, image_size: int) -> dict[str, str]:
    """Random-init bloom-560m, an SD-Turbo-shaped pipeline and a ViT-L-14 aesthetic MLP in `root`."""
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from safetensors.torch import save_file
    from transformers import (
        AutoTokenizer,
        BloomConfig,
        BloomForCausalLM,
        CLIPTextConfig,
        CLIPTextModel,
    )

    from promptrl.rewards import AestheticMLP
    from promptrl.tiny import clip_bpe_tokenizer, tiny_assets

    torch.manual_seed(0)
    policy = root / "bloom-560m"
    tokenizer = AutoTokenizer.from_pretrained(tiny_assets()["policy"])
    BloomForCausalLM(BloomConfig(vocab_size=250880, hidden_size=1024, n_layer=24, n_head=16,
                                 bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                 pad_token_id=tokenizer.pad_token_id)).save_pretrained(policy)
    tokenizer.save_pretrained(policy)

    unet = UNet2DConditionModel(
        sample_size=image_size // 8, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True,
    )
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        sample_size=image_size)
    text_encoder = CLIPTextModel(CLIPTextConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
                                                num_attention_heads=16, projection_dim=1024, hidden_act="gelu"))
    scheduler = EulerDiscreteScheduler(timestep_spacing="trailing")
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=clip_bpe_tokenizer(), unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipeline = root / "sd-turbo"
    pipe.save_pretrained(pipeline)

    aesthetic = root / "aesthetic.safetensors"
    save_file(AestheticMLP(768).state_dict(), str(aesthetic))
    return {"policy": str(policy), "pipeline": str(pipeline), "aesthetic": str(aesthetic)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="real architectures, random weights (see above)")
    parser.add_argument("--device", default=None, help="force a device (e.g. cpu to smoke-test --gpu)")
    parser.add_argument("--ideas", type=int, default=None, help="samples per step (default 32 tiny, 64 --gpu)")
    parser.add_argument("--size", type=int, default=512, help="image size with --gpu")
    parser.add_argument("--steps", type=int, default=3, help="PPO steps; the first is warm-up")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"output_dir={tmp}/run", "trackers=[]", "progress=false", "save_every=0", "image_every=0",
                     "eval_ideas=1", f"steps={args.steps}", "sft.enabled=false"]
        if args.gpu:
            paths = build_real_architectures(Path(tmp), args.size)
            n = args.ideas or 64
            overrides += [f"policy.model={paths['policy']}", f"render.pipeline={paths['pipeline']}",
                          f"render.height={args.size}", f"render.width={args.size}",
                          f"rewards.aesthetic_weights={paths['aesthetic']}", f"ppo.batch_size={n}",
                          f"ppo.mini_batch_size={min(8, n)}", f"ppo.forward_batch_size={min(8, n)}"]
            config = load_config("bloom-560m", None, overrides + args.overrides)
            config = dataclasses.replace(config, rewards=dataclasses.replace(config.rewards, clip_pretrained=None))
        else:
            n = args.ideas or 32
            overrides += [f"ppo.batch_size={n}", f"ppo.forward_batch_size={n}", f"ppo.mini_batch_size={min(16, n)}"]
            config = load_config("tiny", None, overrides + args.overrides)
        if args.device:
            config = dataclasses.replace(config, render=dataclasses.replace(config.render, device=args.device))
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        trainer = PromptTrainer(config)
        history = trainer.train()

    rows = history[1:] or history
    device = trainer.accelerator.device
    print(f"{config.preset or 'custom'} preset, {n} samples per step, "
          f"{config.render.height}x{config.render.width}, {config.render.num_inference_steps} denoising step(s), "
          f"device {device}; median over {len(rows)} step(s) after warm-up:")
    total = 0.0
    for key in STAGES:
        t = statistics.median(h[key] for h in rows)
        total += t
        print(f"  {key[5:]:9s} {t:8.3f} s")
    print(f"  {'total':9s} {total:8.3f} s per step")
    if torch.cuda.is_available():
        print(f"  peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
