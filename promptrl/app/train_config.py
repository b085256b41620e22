"""What a visitor may set for a training run: an allow-list of hyperparameters, each with a range.

The operator's config (`app.py --preset/--config/--set`) is the base; the visitor picks a named
preset, uploads a YAML file or types `key=value` lines, and only the keys below get through. A
key that names a server path, a model, code or an output dir is refused with the reason, so the
browser can never make the server read a file, import a module or write outside its runs dir.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..config import (
    ALGORITHMS,
    TrainConfig,
    flatten,
    get_preset,
    merge,
    parse_overrides,
    parse_yaml,
    update_dataclass,
)
from ..errors import UsageError
from ..ppo.config import GROUP_SCALES, GRPO_LOSS_TYPES
from ..presets import PRESETS
from ..rewards import weighted_terms
from ..rewards.baselines import BASELINES
from .limits import Limits, UserError, number


@dataclass(frozen=True)
class Knob:
    """One adjustable key: a number in [low, high] (`high` may name a `Limits` field), a flag,
    or one of `choices`."""

    kind: str  # "int", "float", "bool" or "choice"
    low: float = 0
    high: float | str = 0
    choices: tuple = ()


def _int(low, high):
    return Knob("int", low, high)


def _float(low, high):
    return Knob("float", low, high)


FLAG = Knob("bool")

ALLOWED: dict[str, Knob] = {
    "steps": _int(1, "train_steps"),
    "samples_per_idea": _int(1, 8),
    "seed": _int(0, 2**31 - 1),
    "save_every": _int(0, "train_steps"),
    "keep_checkpoints": _int(1, 5),
    "image_every": _int(0, "train_steps"),
    "eval_ideas": _int(1, 8),
    "ppo.lr": _float(1e-8, 1e-2),
    "ppo.init_kl_coef": _float(0.0, 10.0),
    "ppo.adap_kl_ctrl": FLAG,
    "ppo.target": _float(0.01, 100.0),
    "ppo.horizon": _float(1.0, 1e6),
    "ppo.gamma": _float(0.0, 1.0),
    "ppo.lam": _float(0.0, 1.0),
    "ppo.cliprange": _float(0.01, 1.0),
    "ppo.cliprange_value": _float(0.01, 10.0),
    "ppo.vf_coef": _float(0.0, 10.0),
    "ppo.batch_size": _int(1, "train_batch"),
    "ppo.mini_batch_size": _int(1, "train_batch"),
    "ppo.forward_batch_size": _int(1, "train_batch"),
    "ppo.ppo_epochs": _int(1, 16),
    "ppo.max_grad_norm": _float(1e-3, 1e3),
    "ppo.score_clip": _float(0.1, 1e3),
    "ppo.use_score_scaling": FLAG,
    "ppo.use_score_norm": FLAG,
    "ppo.whiten_rewards": FLAG,
    "algorithm": Knob("choice", choices=ALGORITHMS),
    "grpo.beta": _float(0.0, 1.0),
    "grpo.epsilon_high": _float(0.01, 1.0),
    "grpo.scale_rewards": Knob("choice", choices=GROUP_SCALES),
    "grpo.loss_type": Knob("choice", choices=GRPO_LOSS_TYPES),
    "grpo.num_iterations": _int(1, 8),
    "grpo.max_completion_length": _int(1, 128),
    "rloo.beta": _float(0.0, 1.0),
    "rloo.epsilon_high": _float(0.01, 1.0),
    "rloo.normalize_advantages": FLAG,
    "rloo.num_iterations": _int(1, 8),
    "generation.max_new_tokens": _int(1, 128),
    "generation.temperature": _float(0.05, 2.0),
    "generation.top_p": _float(0.05, 1.0),
    "render.num_inference_steps": _int(1, "render_steps"),
    "render.guidance_scale": _float(0.0, 20.0),
    "rewards.baseline": Knob("choice", choices=tuple(BASELINES)),
    "sft.enabled": FLAG,
    "sft.epochs": _int(1, 5),
    "sft.lr": _float(1e-7, 1e-2),
    "sft.batch_size": _int(1, "train_batch"),
    "trackers": Knob("choice", choices=([], ["tensorboard"])),  # tensorboard writes inside the run dir
}
"""Every key a visitor may set, with its range."""

REFUSED = {
    "ideas": "names a server file; upload an ideas file instead",
    "output_dir": "names a server directory; the app writes each run in its own runs dir",
    "sft.corpus": "names a server file; the operator sets it when launching the app",
    "policy": "names a model to load; the operator chooses models when launching the app",
    "render.pipeline": "names a model to load; the operator chooses models when launching the app",
    "render.device": "is a server setting; the operator chooses devices when launching the app",
    "rewards.terms": "can name code (a callable reward) or a weights file; set the reward weights with the sliders",
    "rewards.clip_model": "names a model to load; the operator chooses models when launching the app",
    "rewards.clip_pretrained": "names a weights file; the operator chooses models when launching the app",
    "rewards.aesthetic_weights": "names a weights file; the operator chooses models when launching the app",
    "preset": "chooses the base config; pick one of the named presets in the Preset list",
}
"""Why the keys a visitor might try are refused (the rest: not on the list)."""


def _nest(flat: dict) -> dict:
    out: dict = {}
    for key, value in flat.items():
        *parents, last = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def check_value(key: str, value, limits: Limits):
    """`value` for allow-listed `key` within its range, else a UserError saying why."""
    knob = ALLOWED.get(key)
    if knob is None:
        section = key.split(".")[0]
        reason = REFUSED.get(key) or REFUSED.get(section)
        if reason is None:
            reason = f"is not among the settings a visitor may change ({', '.join(ALLOWED)})"
        raise UserError(f"The key '{key}' {reason}.")
    if knob.kind == "bool":
        if not isinstance(value, bool):
            raise UserError(f"{key} must be true or false, got {value!r}.")
        return value
    if knob.kind == "choice":
        if value not in knob.choices:
            raise UserError(f"{key} must be one of {', '.join(map(repr, knob.choices))}, got {value!r}.")
        return value
    high = getattr(limits, knob.high) if isinstance(knob.high, str) else knob.high
    where = f" (raise it with app.py --limit {knob.high}=N)" if isinstance(knob.high, str) else ""
    try:
        return number(value, key, knob.low, high, integer=knob.kind == "int")
    except UserError as err:
        raise UserError(f"{err}{where}") from None


def visitor_values(yaml_text: str | None, overrides_text: str | None, limits: Limits) -> tuple[dict, str | None]:
    """(checked nested values, preset named in the YAML or None) from an uploaded YAML and
    `key=value` lines; the lines win over the YAML."""
    data = parse_yaml(yaml_text, "The uploaded config") if yaml_text else {}
    preset = data.pop("preset", None)
    lines = [
        line.strip()
        for line in (overrides_text or "").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    try:
        flat = flatten(merge(data, parse_overrides(lines)), leaf=lambda key: key in ALLOWED)
    except UsageError as err:
        raise UserError(str(err)) from None
    if "preset" in flat:
        preset = flat.pop("preset")
    return _nest({key: check_value(key, value, limits) for key, value in flat.items()}), preset


AS_CONFIGURED = "as configured"
"""The algorithm choice that keeps the config's."""


def run_config(
    base: TrainConfig,
    preset: str | None,
    yaml_text: str | None,
    overrides_text: str | None,
    steps,
    weights: dict[str, float],
    limits: Limits,
    algorithm: str | None = None,
) -> TrainConfig:
    """The Train tab's config: the operator's config (or another named preset), then the
    visitor's checked values, the algorithm list (grpo and rloo bring `rewards.baseline: none`
    unless the visitor set a baseline), the steps box and the reward weights."""
    values, yaml_preset = visitor_values(yaml_text, overrides_text, limits)
    if algorithm is not None:
        values["algorithm"] = check_value("algorithm", algorithm, limits)
        if algorithm != "ppo":
            values.setdefault("rewards", {}).setdefault("baseline", "none")
    preset = yaml_preset or preset or base.preset
    if preset is not None and (not isinstance(preset, str) or preset not in PRESETS):
        raise UserError(f"Preset {str(preset)[:40]!r} is not one of the named presets: {', '.join(PRESETS)}.")
    config = base if preset == base.preset else get_preset(preset)
    config = update_dataclass(config, values)
    if steps not in (None, "", 0):
        config = dataclasses.replace(config, steps=check_value("steps", steps, limits))
    if config.steps > limits.train_steps:
        raise UserError(
            f"steps is {config.steps}; the app runs at most {limits.train_steps} "
            f"(raise it with app.py --limit train_steps=N)."
        )
    terms = weighted_terms(config.rewards.terms, weights)
    return dataclasses.replace(config, rewards=dataclasses.replace(config.rewards, terms=terms), progress=False)
