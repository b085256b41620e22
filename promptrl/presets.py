"""Named configurations: each is the values it sets over `TrainConfig`'s defaults, as a YAML
config file would hold them; `config.get_preset(name)` applies them. YAML files and `--set`
override any field.

- `tiny` (the default, `DEFAULT_PRESET`): everything offline on a CPU in minutes: a tiny BLOOM
  policy, a tiny Stable Diffusion pipeline and a tiny open_clip scorer, built locally
  (`promptrl.standins`) and cached. Values of the form `tiny:<asset>` are resolved to those local paths
  when training starts. Image seeds go by idea slot (the same 16 seeds every step), because in
  the tiny pipeline the seed moves an image more than the prompt does: batch means are then
  comparable from step to step.
- `bloom-560m`: bigscience/bloom-560m + stabilityai/sd-turbo (1 step, 512x512) + ViT-L-14
  aesthetic and similarity rewards, sized for one 16 GB Colab T4 (fp16 rendering and scoring).
- `gpt2`: the same with GPT-2 as the prompt generator.
- `qwen2.5-0.5b`: an instruct model, Qwen/Qwen2.5-0.5B-Instruct (Apache-2.0), with LoRA, asked
  for a prompt through its chat template (`generation.chat`), trained with GRPO on four
  samples per idea; images and rewards as `bloom-560m`.
- `sdxl-turbo`, `sd3.5-medium`, `flux-schnell`, `pixart-sigma`, `sana-600m`: bloom-560m
  writing prompts for that image model, with the family's recommended steps, guidance and
  size, and prompts as long as its text encoder reads (docs/families.md has the table).
"""

from __future__ import annotations

from collections.abc import Callable

DEFAULT_PRESET = "tiny"
"""The preset every entry point (CLI commands, app) starts from when none is named."""


def add_config_arguments(parser, preset_help: str, config_help: str, example: str = "ppo.lr=1e-4") -> None:
    """`--preset`, `--config` and repeatable `--set KEY=VALUE` (into `args.overrides`): how every
    command and the app name a config; `load_config(preset, config, overrides)` reads them."""
    parser.add_argument("--preset", default=None, help=preset_help)
    parser.add_argument("--config", default=None, help=config_help)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override any setting, e.g. --set {example} (repeatable)",
    )


TEMPLATE = "Idea: {idea}\nPrompt:"
"""The query every preset's generator answers."""


def _tiny() -> dict:
    return {
        "preset": "tiny",
        "policy": {"model": "tiny:policy"},
        "generation": {"template": TEMPLATE, "max_new_tokens": 16},
        "render": {
            "pipeline": "tiny:pipeline",
            "num_inference_steps": 1,
            "guidance_scale": 3.0,
            "height": 64,
            "width": 64,
            "chunk_size": 16,
            "seed_mode": "slot",
        },
        "rewards": {
            "terms": [
                {"type": "aesthetic", "weight": 1.0},
                {"type": "similarity", "weight": 1.0},
                {"type": "penalty", "weight": 1.0, "max_words": 30},
            ],
            "baseline": "group",
            "clip_model": "tiny:clip_model_name",
            "clip_pretrained": "tiny:clip_pretrained",
            "aesthetic_weights": "tiny:aesthetic_weights",
            "pickscore_model": "tiny:pickscore",
            "pickscore_processor": None,
            "hps_model": "tiny:clip_model_name",
            "hps_weights": "tiny:hps_weights",
        },
        "eval": {"heldout": 16, "samples": 2, "every": 8, "judges": [{"type": "pickscore"}]},
        "ppo": {
            "lr": 1e-3,
            "batch_size": 32,
            "mini_batch_size": 16,
            "forward_batch_size": 32,
            "ppo_epochs": 4,
            "init_kl_coef": 0.05,
            "use_score_scaling": True,
            "use_score_norm": True,
            "score_clip": 3.0,
        },
        "sft": {"enabled": True, "epochs": 2, "lr": 3e-3, "batch_size": 16},
        "samples_per_idea": 2,
        "steps": 48,
        "output_dir": "runs/tiny",
        "save_every": 16,
        "image_every": 16,
    }


def _real(name: str, model: str, lora: bool) -> dict:
    return {
        "preset": name,
        "policy": {"model": model, "lora": lora},
        "generation": {"template": TEMPLATE, "max_new_tokens": 48},
        "render": {
            "pipeline": "stabilityai/sd-turbo",
            "num_inference_steps": 1,
            "guidance_scale": 0.0,
            "height": 512,
            "width": 512,
            "chunk_size": 8,
        },
        "rewards": {
            "terms": [
                {"type": "aesthetic", "weight": 1.0},
                {"type": "similarity", "weight": 4.0, "hinge": 0.28},
                {"type": "penalty", "weight": 1.0, "max_words": 45},
            ],
            "baseline": "group",
        },
        "ppo": {
            "lr": 1e-4 if lora else 1.41e-5,
            "batch_size": 32,
            "mini_batch_size": 8,
            "forward_batch_size": 8,
            "init_kl_coef": 0.1,
            "use_score_scaling": True,
            "use_score_norm": True,
            "score_clip": 5.0,
            "mixed_precision": "no",
        },
        "samples_per_idea": 2,
        "steps": 200,
        "output_dir": f"runs/{name}",
        "save_every": 25,
        "image_every": 10,
    }


def _instruct(name: str, model: str) -> dict:
    """An instruct policy: LoRA on every attention projection, the idea as the user's message
    under the default system prompt, GRPO with four samples per idea (RePrompt's group size)."""
    preset = _real(name, model, lora=True)
    preset["policy"]["lora_target_modules"] = ["q_proj", "k_proj", "v_proj", "o_proj"]
    preset["generation"] = {"template": "{idea}", "chat": True, "max_new_tokens": 48}
    preset["algorithm"] = "grpo"
    preset["grpo"] = {"beta": 0.0, "loss_type": "dapo", "scale_rewards": "group"}
    preset["samples_per_idea"] = 4
    # GRPO's advantages are the rewards against their group's mean and std already.
    preset["rewards"]["baseline"] = "none"
    preset["ppo"] = {
        # Lower than bloom-560m's LoRA 1e-4: an instruct model starts out writing usable prompts,
        # and with beta 0 no KL term pulls it back when a large step breaks its formatting.
        "lr": 3e-5,
        "batch_size": 32,
        "mini_batch_size": 8,
        "forward_batch_size": 8,
        "mixed_precision": "no",
    }
    return preset


FAMILY_RENDER = {
    "sdxl-turbo": {"pipeline": "stabilityai/sdxl-turbo", "num_inference_steps": 1, "guidance_scale": 0.0},
    "sd3.5-medium": {
        "pipeline": "stabilityai/stable-diffusion-3.5-medium",
        "num_inference_steps": 40,
        "guidance_scale": 4.5,
        "height": 1024,
        "width": 1024,
        "chunk_size": 4,
    },
    "flux-schnell": {
        "pipeline": "black-forest-labs/FLUX.1-schnell",
        "num_inference_steps": 4,
        "guidance_scale": 0.0,
        "max_sequence_length": 256,
        "chunk_size": 4,
    },
    "pixart-sigma": {
        "pipeline": "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS",
        "num_inference_steps": 20,
        "guidance_scale": 4.5,
        "height": 1024,
        "width": 1024,
        "max_sequence_length": 300,
        "chunk_size": 4,
    },
    "sana-600m": {
        "pipeline": "Efficient-Large-Model/Sana_600M_512px_diffusers",
        "num_inference_steps": 20,
        "guidance_scale": 4.5,
        "max_sequence_length": 300,
    },
}
"""Preset name -> its image model's recommended settings (over `_real`'s 512x512, chunks of 8):
the Turbo models and FLUX.1-schnell distilled to 1-4 steps without guidance, the others with
guidance. T5 and Gemma read long prompts; CLIP 77 tokens."""

PROMPT_TOKENS = {"sd3.5-medium": 160, "flux-schnell": 160, "pixart-sigma": 200, "sana-600m": 200}
"""The policy's `generation.max_new_tokens` under a T5 or Gemma encoder's 256 or 300 tokens (a
policy token is about one encoder token in English prompts; what is longer is cut, flagged)."""


def _family(name: str) -> dict:
    """bloom-560m writing prompts for another image model."""
    preset = _real(name, "bigscience/bloom-560m", lora=True)
    preset["render"].update(FAMILY_RENDER[name])
    if name in PROMPT_TOKENS:
        preset["generation"]["max_new_tokens"] = PROMPT_TOKENS[name]
        # the penalty's word limit at about the words of that many tokens, not CLIP-sized
        for term in preset["rewards"]["terms"]:
            if term["type"] == "penalty":
                term["max_words"] = round(0.75 * PROMPT_TOKENS[name])
    return preset


PRESETS: dict[str, Callable[[], dict]] = {
    "tiny": _tiny,
    "bloom-560m": lambda: _real("bloom-560m", "bigscience/bloom-560m", lora=True),
    "gpt2": lambda: _real("gpt2", "gpt2", lora=False),
    "qwen2.5-0.5b": lambda: _instruct("qwen2.5-0.5b", "Qwen/Qwen2.5-0.5B-Instruct"),
    **{name: (lambda name=name: _family(name)) for name in FAMILY_RENDER},
}
"""Preset name -> a function returning its values (fresh dicts every call)."""
