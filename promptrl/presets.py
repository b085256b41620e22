"""Named configurations. Each is a `TrainConfig`; YAML files and `--set` override any field.

- `tiny`: everything offline on a CPU in minutes: a tiny BLOOM policy, a tiny Stable Diffusion
  pipeline and a tiny open_clip scorer, built locally (`tiny.py`) and cached. Values of the form
  `tiny:<asset>` are resolved to those local paths when training starts. Image seeds go by idea
  slot (the same 16 seeds every step), because in the tiny pipeline the seed moves an image
  more than the prompt does: batch means are then comparable from step to step.
- `bloom-560m`: bigscience/bloom-560m + stabilityai/sd-turbo (1 step, 512x512) + ViT-L-14
  aesthetic and similarity rewards, sized for one 16 GB Colab T4 (fp16 rendering and scoring).
- `gpt2`: the same with GPT-2 as the prompt generator.
"""

from __future__ import annotations

import dataclasses

from .config import EvalConfig, PolicyConfig, RewardsConfig, SFTConfig, TrainConfig
from .generation import PromptGenerationConfig
from .ppo_config import PPOConfig
from .rendering import RenderConfig

TEMPLATE = "Idea: {idea}\nPrompt:"

_REAL_REWARDS = [
    {"type": "aesthetic", "weight": 1.0},
    {"type": "similarity", "weight": 4.0, "hinge": 0.28},
    {"type": "penalty", "weight": 1.0, "max_words": 45},
]


def _tiny() -> TrainConfig:
    return TrainConfig(
        preset="tiny",
        policy=PolicyConfig(model="tiny:policy"),
        generation=PromptGenerationConfig(template=TEMPLATE, max_new_tokens=16),
        render=RenderConfig(
            pipeline="tiny:pipeline", num_inference_steps=1, guidance_scale=3.0, height=64, width=64, chunk_size=16,
            seed_mode="slot",
        ),
        rewards=RewardsConfig(
            terms=[
                {"type": "aesthetic", "weight": 1.0},
                {"type": "similarity", "weight": 1.0},
                {"type": "penalty", "weight": 1.0, "max_words": 30},
            ],
            baseline="group",
            clip_model="tiny:clip_model_name",
            clip_pretrained="tiny:clip_pretrained",
            aesthetic_weights="tiny:aesthetic_weights",
            pickscore_model="tiny:pickscore",
            pickscore_processor=None,
            hps_model="tiny:clip_model_name",
            hps_weights="tiny:hps_weights",
        ),
        eval=EvalConfig(heldout=16, samples=2, every=8, judges=[{"type": "pickscore"}]),
        ppo=PPOConfig(
            lr=1e-3, batch_size=32, mini_batch_size=16, forward_batch_size=32, ppo_epochs=4,
            init_kl_coef=0.05, use_score_scaling=True, use_score_norm=True, score_clip=3.0,
        ),
        sft=SFTConfig(enabled=True, epochs=2, lr=3e-3, batch_size=16),
        samples_per_idea=2,
        steps=48,
        output_dir="runs/tiny",
        save_every=16,
        image_every=16,
    )


def _real(model: str, lora: bool) -> TrainConfig:
    return TrainConfig(
        policy=PolicyConfig(model=model, lora=lora),
        generation=PromptGenerationConfig(template=TEMPLATE, max_new_tokens=48),
        render=RenderConfig(pipeline="stabilityai/sd-turbo", num_inference_steps=1, guidance_scale=0.0,
                            height=512, width=512, chunk_size=8),
        rewards=RewardsConfig(terms=[dict(t) for t in _REAL_REWARDS], baseline="group"),
        ppo=PPOConfig(lr=1.41e-5 if not lora else 1e-4, batch_size=32, mini_batch_size=8, forward_batch_size=8,
                      init_kl_coef=0.1, use_score_scaling=True, use_score_norm=True, score_clip=5.0,
                      mixed_precision="no"),
        samples_per_idea=2,
        steps=200,
        save_every=25,
        image_every=10,
    )


PRESETS = {
    "tiny": _tiny,
    "bloom-560m": lambda: dataclasses.replace(_real("bigscience/bloom-560m", lora=True), preset="bloom-560m",
                                              output_dir="runs/bloom-560m"),
    "gpt2": lambda: dataclasses.replace(_real("gpt2", lora=False), preset="gpt2", output_dir="runs/gpt2"),
}


def get_preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise ValueError(f"Unknown preset '{name}'. Available presets: {', '.join(PRESETS)}.")
    return PRESETS[name]()


def resolve_tiny(config: TrainConfig) -> TrainConfig:
    """Replace every `tiny:<asset>` string with the local path of that tiny asset (built if needed)."""
    assets = None

    def walk(obj):
        nonlocal assets
        if dataclasses.is_dataclass(obj):
            return dataclasses.replace(obj, **{f.name: walk(getattr(obj, f.name)) for f in dataclasses.fields(obj)})
        if isinstance(obj, list):
            return [walk(x) for x in obj]
        if isinstance(obj, dict):
            return {k: walk(v) for k, v in obj.items()}
        if isinstance(obj, str) and obj.startswith("tiny:"):
            if assets is None:
                from .tiny import tiny_assets

                assets = tiny_assets()
            key = obj.split(":", 1)[1]
            if key not in assets:
                raise ValueError(f"Unknown tiny asset '{key}'; known: {', '.join(assets)}.")
            return assets[key]
        return obj

    return walk(config)
