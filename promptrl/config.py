"""The training configuration: one dataclass per component, plus YAML and `key=value` overrides.

Each section checks its own fields in `__post_init__` (one-line errors naming the key), so no
caller re-checks them. A preset (see `presets.py`) is a named set of values over the defaults,
applied by `get_preset`. Overrides use dotted keys: `ppo.lr=1e-4`, `render.num_inference_steps=4`,
`steps=50`; values are parsed as YAML scalars.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import checks
from .errors import NotFoundError, UsageError
from .ppo.config import GRPOConfig, PPOConfig, RLOOConfig
from .ppo.sampling import PromptGenerationConfig
from .presets import DEFAULT_PRESET, PRESETS
from .rendering import RenderConfig
from .rewards.config import RewardsConfig


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

    def __post_init__(self):
        checks.check_types(self, "policy")
        checks.not_blank("policy", "model", self.model)
        checks.not_blank("policy", "tokenizer", self.tokenizer)
        checks.at_least("policy", "lora_r", self.lora_r, 1)
        checks.positive("policy", "lora_alpha", self.lora_alpha)

    def peft_config(self):
        """The `peft.LoraConfig` that `lora` asks for (dropout off, as everywhere in PPO), else None."""
        if not self.lora:
            return None
        from peft import LoraConfig

        return LoraConfig(
            r=self.lora_r,
            lora_alpha=self.lora_alpha,
            target_modules=self.lora_target_modules,
            lora_dropout=0.0,
            task_type="CAUSAL_LM",
        )


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

    def __post_init__(self):
        checks.check_types(self, "sft")
        checks.not_blank("sft", "corpus", self.corpus)
        checks.at_least("sft", "epochs", self.epochs, 1)
        checks.positive("sft", "lr", self.lr)
        checks.at_least("sft", "batch_size", self.batch_size, 1)
        checks.at_least("sft", "max_length", self.max_length, 2)


JUDGE_TYPES = ("aesthetic", "similarity", "pickscore", "hps", "penalty", "preference")
ALGORITHMS = ("ppo", "grpo", "rloo")


@dataclass
class EvalConfig:
    heldout: int = 16
    """Ideas held out of training (chosen by a seeded hash, so the same every run); `promptrl
    eval` and the judge use them. At most a quarter of the ideas, and none when that would be
    a single idea."""
    samples: int = 4
    """Prompts per held-out idea and model in an evaluation (same sampling and image seeds
    for both models)."""
    every: int = 0
    """Score the held-out ideas with the judges every N training steps (0: only at the end)."""
    judges: list[dict] | None = None
    """Built-in reward specs the policy is judged by but not trained on, e.g. `[{type: pickscore}]`;
    None: a preference model not in the training reward when its weights are at hand, else
    the similarity reward."""
    bootstrap: int = 2000
    """Bootstrap resamples (ideas, then samples within them) behind every 95% interval."""
    seed: int = 0
    """Seed of the evaluation's prompt sampling, image noise and bootstrap."""

    def __post_init__(self):
        checks.check_types(self, "eval")
        for name, low in (("heldout", 0), ("samples", 1), ("every", 0), ("bootstrap", 1), ("seed", 0)):
            checks.at_least("eval", name, getattr(self, name), low)
        for judge in self.judges or []:
            if not isinstance(judge, dict) or judge.get("type") not in JUDGE_TYPES:
                raise UsageError(
                    f"config key 'eval.judges' item {judge!r} must be a reward spec whose type is "
                    f"one of {', '.join(JUDGE_TYPES)}."
                )


@dataclass
class TrainConfig:
    preset: str | None = None
    """Name of the preset this config started from (informational)."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    generation: PromptGenerationConfig = field(default_factory=PromptGenerationConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    rewards: RewardsConfig = field(default_factory=RewardsConfig)
    algorithm: str = "ppo"
    """How the policy learns from the rewards: 'ppo' (value head, GAE, adaptive KL penalty; trl
    0.11's), 'grpo' or 'rloo' (no value head: each sample against its idea's other samples, so
    samples_per_idea >= 2). The `ppo` section holds what all three share; `grpo` and `rloo` their own."""
    ppo: PPOConfig = field(default_factory=lambda: PPOConfig(batch_size=16, mini_batch_size=8, forward_batch_size=16))
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    rloo: RLOOConfig = field(default_factory=RLOOConfig)
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
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Held-out ideas, the held-out judge and `promptrl eval` defaults."""
    trackers: list[str] = field(default_factory=lambda: ["tensorboard"])
    """accelerate trackers ('tensorboard', 'wandb'); [] for JSONL only."""
    seed: int = 0
    """Seed of everything: idea order, sampling, PPO shuffling."""
    progress: bool = True
    """Show a tqdm progress bar."""

    def __post_init__(self):
        checks.check_types(self, "")
        checks.at_least("", "steps", self.steps, 1)
        checks.at_least("", "samples_per_idea", self.samples_per_idea, 1)
        checks.at_least("", "save_every", self.save_every, 0)
        checks.at_least("", "keep_checkpoints", self.keep_checkpoints, 1)
        checks.at_least("", "image_every", self.image_every, 0)
        checks.at_least("", "eval_ideas", self.eval_ideas, 1)
        checks.at_least("", "seed", self.seed, 0)
        checks.not_blank("", "ideas", self.ideas)
        checks.not_blank("", "output_dir", self.output_dir)
        if not all(isinstance(t, str) for t in self.trackers):
            raise UsageError(f"config key 'trackers' must be a list of tracker names, got {self.trackers!r}.")
        if self.ppo.batch_size % self.samples_per_idea:
            raise UsageError(
                f"config key 'samples_per_idea' ({self.samples_per_idea}) must divide "
                f"ppo.batch_size ({self.ppo.batch_size})."
            )
        checks.one_of("", "algorithm", self.algorithm, ALGORITHMS)
        if self.algorithm != "ppo":
            if self.samples_per_idea < 2:
                raise UsageError(
                    f"algorithm '{self.algorithm}' compares the samples of each idea with each other: "
                    f"set samples_per_idea >= 2 (got {self.samples_per_idea}; 4-8 is usual)."
                )
            if self.rewards.baseline != "none":
                raise UsageError(
                    f"config key 'rewards.baseline' is '{self.rewards.baseline}', but algorithm "
                    f"'{self.algorithm}' measures each sample against its idea's others already: "
                    "set rewards.baseline=none."
                )
        if self.rewards.baseline == "group" and self.samples_per_idea < 2:
            raise UsageError(
                "config key 'rewards.baseline' is 'group', which compares samples of the same idea: "
                f"set samples_per_idea >= 2 (got {self.samples_per_idea})."
            )
        if self.sft.enabled and self.generation.chat:
            raise UsageError(
                "config keys 'sft.enabled' and 'generation.chat' are both on, but the supervised warm "
                "start trains on the plain template, not the chat template: set sft.enabled=false "
                "(an instruct model already writes prompts) or generation.chat=false."
            )
        # The rollouts sample at generation.temperature; PPO's log-probs assume ppo.temperature.
        if self.generation.temperature != self.ppo.temperature:
            raise UsageError(
                f"config keys 'generation.temperature' ({self.generation.temperature}) and "
                f"'ppo.temperature' ({self.ppo.temperature}) differ; set one of them (the other "
                "follows) or both to the same value."
            )

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
    if hint in (int, float) and isinstance(value, bool):
        raise UsageError(f"config key '{key}' expects {hint.__name__}, got {value!r}.")
    if hint in (int, float) and isinstance(value, str):
        try:  # YAML reads "2e-3" (no dot) as a string
            number = hint(value)
        except ValueError:
            raise UsageError(f"config key '{key}' expects {hint.__name__}, got {value!r}.") from None
        return _coerce(number, hint, key)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise UsageError(f"config key '{key}' must be a finite number, got {value!r}.")
        return float(value)
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if hint in (int, float, bool, str) and not isinstance(value, hint):
        if hint is str and isinstance(value, (int, float)):
            return str(value)
        raise UsageError(f"config key '{key}' expects {hint.__name__}, got {value!r}.")
    return value


def update_dataclass(obj, values: dict, prefix: str = ""):
    """Return a copy of dataclass `obj` with nested `values` applied; unknown keys are errors."""
    if isinstance(obj, TrainConfig):
        values = one_temperature(values)
    types_ = _field_types(type(obj))
    changes = {}
    for key, value in values.items():
        full = f"{prefix}{key}"
        if key not in types_:
            raise UsageError(f"Unknown config key '{full}'. Known keys here: {', '.join(sorted(types_))}.")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise UsageError(f"config key '{full}' is a section; set its fields, e.g. {full}.<field>=...")
            changes[key] = update_dataclass(current, value, prefix=f"{full}.")
        else:
            changes[key] = _coerce(value, types_[key], full)
    return dataclasses.replace(obj, **changes)


TEMPERATURE_SECTIONS = ("generation", "ppo")


def one_temperature(values: dict) -> dict:
    """`values` with a sampling temperature given under one of `generation` and `ppo` given
    under both: the other follows. Given under both, they stay as they are (`TrainConfig`
    refuses two different ones)."""
    given = [
        values[section]["temperature"]
        for section in TEMPERATURE_SECTIONS
        if isinstance(values.get(section), dict) and "temperature" in values[section]
    ]
    if len(given) != 1:
        return values
    return merge(values, {section: {"temperature": given[0]} for section in TEMPERATURE_SECTIONS})


def parse_overrides(pairs: list[str]) -> dict:
    """`["ppo.lr=1e-4", "steps=5"]` -> `{"ppo": {"lr": 1e-4}, "steps": 5}`."""
    out: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise UsageError(f"--set expects key=value, got {pair!r}.")
        key, raw = pair.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        try:
            node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            raise UsageError(f"--set {key.strip()}: could not read the value {raw!r} (YAML scalar or list).") from None
    return out


def get_preset(name: str) -> TrainConfig:
    """The `TrainConfig` of a named preset (see `presets.py`)."""
    if name not in PRESETS:
        raise UsageError(f"Unknown preset '{name}'. Available presets: {', '.join(PRESETS)}.")
    return update_dataclass(TrainConfig(), PRESETS[name]())


def load_config(
    preset: str | None = None, config_file: str | None = None, overrides: list[str] | None = None
) -> TrainConfig:
    """Preset, then YAML file, then `key=value` overrides, each on top of the last.

    The one rule every entry point (the commands, the app) starts from: the preset named; else,
    under a YAML file, the preset the file names with `preset:`, or `TrainConfig`'s full-size
    defaults if it names none (a config file describes a real run); else `DEFAULT_PRESET`.
    """
    if not preset and not config_file:
        preset = DEFAULT_PRESET
    config = get_preset(preset) if preset else TrainConfig()
    if config_file:
        path = Path(config_file)
        if not path.exists():
            raise NotFoundError(f"Config file {config_file} does not exist.")
        data = parse_yaml(path.read_text(), f"Config file {config_file}")
        if "preset" in data and not preset:
            config = get_preset(data["preset"])
    else:
        data = {}
    # YAML and overrides are applied together: checks across fields see the final values. A
    # temperature set in one layer sets both keys there, so a file's pair yields to an override.
    return update_dataclass(config, merge(one_temperature(data), one_temperature(parse_overrides(overrides or []))))


def parse_yaml(text: str, what: str) -> dict:
    """A YAML mapping parsed safely (no tags, no objects); a syntax error is one line naming where."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        raise UsageError(f"{what} is not valid YAML{where}: {problem}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{what} must hold a mapping of keys to values, got {type(data).__name__}.")
    return data


def flatten(data: dict, sep: str = ".", leaf=lambda key: False, prefix: str = "") -> dict:
    """Nested dicts as one level of `a.b.c` keys (joined with `sep`); a key for which `leaf(key)`
    holds keeps its dict value whole."""
    out = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict) and not leaf(full):
            out.update(flatten(value, sep, leaf, f"{full}{sep}"))
        else:
            out[full] = value
    return out


def merge(base: dict, extra: dict) -> dict:
    """`extra` deep-merged over `base` (new dicts; neither argument changes)."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def save_config(config: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
