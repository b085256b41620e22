"""The training configuration: one dataclass per component, plus YAML and `key=value` overrides.

A preset (see `presets.py`) is just a named `TrainConfig`. Overrides use dotted keys:
`ppo.lr=1e-4`, `render.num_inference_steps=4`, `steps=50`; values are parsed as YAML scalars.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .generation import PromptGenerationConfig
from .ppo_config import PPOConfig
from .rendering import RenderConfig


@dataclass
class PolicyConfig:
    model: str = "bigscience/bloom-560m"
    """Hub name or local directory of the prompt generator (any causal LM)."""
    tokenizer: str | None = None
    """Tokenizer name or path (default: same as `model`)."""
    lora: bool = False
    """Train LoRA adapters (and the value head) only; the reference is the adapter-free model."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator."""
    lora_target_modules: list[str] | None = None
    """Modules that get adapters (default: peft's choice for the architecture)."""
    gradient_checkpointing: bool = False
    """Trade compute for memory in the policy's backward pass."""


@dataclass
class SFTConfig:
    enabled: bool = False
    """Run a supervised warm start before PPO (`promptrl train`)."""
    corpus: str = "bundled"
    """Text file of prompts, or of `idea<TAB>prompt` lines; 'bundled' uses promptrl/data/prompts.txt."""
    epochs: int = 1
    """Passes over the corpus."""
    lr: float = 5e-4
    """AdamW learning rate."""
    batch_size: int = 16
    """Examples per gradient step."""
    max_length: int = 96
    """Token limit of one templated example."""


@dataclass
class RewardsConfig:
    terms: list[dict] = field(default_factory=lambda: [{"type": "aesthetic", "weight": 1.0}])
    """Reward terms, e.g. `{type: similarity, weight: 0.5, hinge: 0.3}`; see rewards.build_reward."""
    clip_model: str = "ViT-L-14"
    """open_clip model name shared by the CLIP-based rewards."""
    clip_pretrained: str = "openai"
    """open_clip pretrained tag or local weights file."""
    aesthetic_weights: str | None = None
    """LAION aesthetic MLP weights: local file or `hf://repo/file` (default: the public one)."""
    baseline: str = "none"
    """Reward normalisation against variance across ideas: 'none'; 'per_idea' (running mean/std of
    each idea); 'group' (mean/std over this batch's samples of the same idea: needs
    samples_per_idea >= 2)."""


@dataclass
class TrainConfig:
    preset: str | None = None
    """Name of the preset this config started from (informational)."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    generation: PromptGenerationConfig = field(default_factory=PromptGenerationConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    rewards: RewardsConfig = field(default_factory=RewardsConfig)
    ppo: PPOConfig = field(default_factory=lambda: PPOConfig(batch_size=16, mini_batch_size=8, forward_batch_size=16))
    sft: SFTConfig = field(default_factory=SFTConfig)
    ideas: str = "bundled"
    """Ideas: a text file (one per line), a `datasets` name with `:column`, or 'bundled'."""
    samples_per_idea: int = 1
    """Prompts sampled per idea in each batch (same idea, same image seed); must divide ppo.batch_size."""
    steps: int = 100
    """PPO steps to run."""
    output_dir: str = "runs/promptrl"
    """Where metrics, images, checkpoints, the report and the final model go."""
    save_every: int = 10
    """Write a checkpoint every N steps (0: only at the end)."""
    keep_checkpoints: int = 2
    """How many recent checkpoints to keep."""
    image_every: int = 10
    """Save an image grid of the batch every N steps (0: never)."""
    eval_ideas: int = 4
    """Ideas in the before/after comparison."""
    trackers: list[str] = field(default_factory=lambda: ["tensorboard"])
    """accelerate trackers ('tensorboard', 'wandb'); [] for JSONL only."""
    seed: int = 0
    """Seed of everything: idea order, sampling, PPO shuffling."""
    progress: bool = True
    """Show a tqdm progress bar."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _field_types(cls) -> dict[str, object]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value, hint, key: str):
    """Convert a YAML value to the field's type where that is unambiguous."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], key) if len(args) == 1 else value
    if hint in (int, float) and isinstance(value, str):
        try:  # YAML reads "2e-3" (no dot) as a string
            return hint(value)
        except ValueError:
            raise ValueError(f"config key '{key}' expects {hint.__name__}, got {value!r}.") from None
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if hint in (int, float, bool, str) and not isinstance(value, hint):
        if hint is str and isinstance(value, (int, float)):
            return str(value)
        raise ValueError(f"config key '{key}' expects {hint.__name__}, got {value!r}.")
    return value


def update_dataclass(obj, values: dict, prefix: str = ""):
    """Return a copy of dataclass `obj` with nested `values` applied; unknown keys are errors."""
    types_ = _field_types(type(obj))
    changes = {}
    for key, value in values.items():
        full = f"{prefix}{key}"
        if key not in types_:
            raise ValueError(f"Unknown config key '{full}'. Known keys here: {', '.join(sorted(types_))}.")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ValueError(f"config key '{full}' is a section; set its fields, e.g. {full}.<field>=...")
            changes[key] = update_dataclass(current, value, prefix=f"{full}.")
        else:
            changes[key] = _coerce(value, types_[key], full)
    return dataclasses.replace(obj, **changes)


def parse_overrides(pairs: list[str]) -> dict:
    """`["ppo.lr=1e-4", "steps=5"]` -> `{"ppo": {"lr": 1e-4}, "steps": 5}`."""
    out: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set expects key=value, got {pair!r}.")
        key, raw = pair.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    return out


def load_config(preset: str | None = None, config_file: str | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Preset, then YAML file, then `key=value` overrides, each on top of the last."""
    from .presets import get_preset

    config = get_preset(preset) if preset else TrainConfig()
    if config_file:
        path = Path(config_file)
        if not path.exists():
            raise FileNotFoundError(f"Config file {config_file} does not exist.")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"Config file {config_file} must hold a mapping of keys to values.")
        if "preset" in data and not preset:
            config = get_preset(data["preset"])
        config = update_dataclass(config, data)
    if overrides:
        config = update_dataclass(config, parse_overrides(overrides))
    return config


def save_config(config: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
