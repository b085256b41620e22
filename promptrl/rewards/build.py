"""Rewards from config: a `{type: builder}` table, `build_reward` over a list of specs and
`reward_from_config` over a `RewardsConfig`.

A spec is a dict such as `{"type": "similarity", "weight": 0.5, "hinge": 0.3}`. Each type
names the keys it takes besides `type`, `name` and `weight`, and a builder that turns the spec
(and the defaults a spec leaves out: device, dtype, which CLIP and preference models) into a
reward. To add a built-in type, add one entry to `BUILDERS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import UsageError
from .clip import AESTHETIC_CLIP, AestheticReward, ClipSimilarityReward
from .embedders import ClipModel, TransformersClip
from .learned import LearnedPreferenceReward
from .penalty import PromptPenalty
from .preference import (
    HPS_MODEL,
    HPS_WEIGHTS,
    PICKSCORE_MODEL,
    PICKSCORE_PROCESSOR,
    HPSReward,
    PickScoreReward,
    hps_clip,
)
from .protocol import RewardFn, WeightedSum

ALL_WEIGHTS_ZERO = "Every reward weight is zero: give at least one reward a non-zero weight."


@dataclass(frozen=True)
class Defaults:
    """What a spec leaves out: where the models run and which CLIP and preference models load."""

    device: str | torch.device | None = None
    dtype: str | torch.dtype | None = None
    clip_model_name: str = AESTHETIC_CLIP[0]
    clip_pretrained: str | None = AESTHETIC_CLIP[1]
    aesthetic_weights: str | None = None
    pickscore_model: str = PICKSCORE_MODEL
    pickscore_processor: str | None = PICKSCORE_PROCESSOR
    hps_model: str = HPS_MODEL
    hps_weights: str = HPS_WEIGHTS

    def clip(self) -> ClipModel:
        """The open_clip model the aesthetic and similarity terms share."""
        return ClipModel.shared(self.clip_model_name, self.clip_pretrained, self.device, self.dtype)


def import_target(target: str) -> Callable:
    """`"package.module:attribute"` -> the attribute."""
    module, sep, attr = target.partition(":")
    if not sep or not module or not attr:
        raise UsageError(f"callable target must look like 'module:function', got {target!r}")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{target} is not callable")
    return obj


def _pickscore(spec: dict, d: Defaults) -> RewardFn:
    model = spec.pop("model", d.pickscore_model)
    processor = spec.pop("processor", d.pickscore_processor)
    return PickScoreReward(TransformersClip.shared(model, processor, d.device, d.dtype), **spec)


def _hps(spec: dict, d: Defaults) -> RewardFn:
    clip = hps_clip(spec.pop("model", d.hps_model), spec.pop("weights", d.hps_weights), d.device, d.dtype)
    return HPSReward(clip, **spec)


@dataclass(frozen=True)
class Builder:
    keys: frozenset[str]
    """The spec keys this type takes besides `type`, `name` and `weight`."""
    build: Callable[[dict, Defaults], RewardFn]
    """`(spec without type/name/weight, defaults) -> reward`."""
    required: frozenset[str] = frozenset()
    """The keys a spec of this type must give, each with an example value."""
    example: str = ""


BUILDERS: dict[str, Builder] = {
    "aesthetic": Builder(
        frozenset({"weights"}), lambda spec, d: AestheticReward(d.clip(), spec.get("weights", d.aesthetic_weights))
    ),
    "similarity": Builder(
        frozenset({"hinge", "scale", "against"}), lambda spec, d: ClipSimilarityReward(d.clip(), **spec)
    ),
    "penalty": Builder(
        frozenset({"max_words", "length_weight", "repetition_weight"}), lambda spec, d: PromptPenalty(**spec)
    ),
    "pickscore": Builder(frozenset({"model", "processor", "against"}), _pickscore),
    "hps": Builder(frozenset({"model", "weights", "against"}), _hps),
    "preference": Builder(
        frozenset({"path"}),
        lambda spec, d: LearnedPreferenceReward(spec["path"], d.device, d.dtype),
        frozenset({"path"}),
        "'path': 'a folder `promptrl prefs fit` wrote'",
    ),
    "callable": Builder(
        frozenset({"target"}),
        lambda spec, d: import_target(spec["target"]),
        frozenset({"target"}),
        "'target': 'module:function'",
    ),
}
"""Every built-in reward type, by the name a spec gives as `type`."""


def weighted_terms(terms: list[dict], weights: dict[str, float]) -> list[dict]:
    """Reward specs with `weights[type]` for the built-in types (a type the specs lack is
    added with its defaults); a zero weight drops the term; other terms keep their weight."""
    out, seen = [], set()
    for spec in terms:
        spec, kind = dict(spec), spec.get("type")
        if kind in weights:
            seen.add(kind)
            spec["weight"] = weights[kind]
        if spec.get("weight", 1.0) != 0:
            out.append(spec)
    out += [{"type": kind, "weight": w} for kind, w in weights.items() if kind not in seen and w != 0]
    if not out:
        raise UsageError(ALL_WEIGHTS_ZERO)
    return out


def build_reward(specs: list[dict], defaults: Defaults | None = None, **given) -> WeightedSum:
    """A `WeightedSum` from config specs, e.g.:

        [{"type": "aesthetic", "weight": 1.0},
         {"type": "similarity", "weight": 0.5, "hinge": 0.3},
         {"type": "penalty", "weight": 1.0, "max_words": 30},
         {"type": "callable", "name": "mine", "target": "my_module:my_fn", "weight": 1.0}]

    Each term is named by its `name` (default: its type); `weight` defaults to 1. What a spec
    leaves out comes from `defaults`, or from `Defaults(**given)` (`device=`, `dtype=`,
    `clip_model_name=`, ...): the CLIP-based terms share one CLIP model, and the preference
    models `pickscore` and `hps` take `model`/`processor`/`weights` from their spec, else from
    the defaults.
    """
    d = defaults or Defaults(**given)
    terms: dict[str, tuple[float, RewardFn]] = {}
    for spec in specs:
        spec = dict(spec)
        kind = spec.pop("type", None)
        if kind not in BUILDERS:
            raise UsageError(f"unknown reward type {kind!r}; known types: {sorted(BUILDERS)}")
        name = spec.pop("name", kind)
        weight = float(spec.pop("weight", 1.0))
        builder = BUILDERS[kind]
        unknown = set(spec) - builder.keys
        if unknown:
            raise UsageError(
                f"reward {name!r} ({kind}): unknown keys {sorted(unknown)}; known: {sorted(builder.keys | {'name', 'weight'})}"
            )
        missing = sorted(builder.required - set(spec))
        if missing:
            raise UsageError(f"reward {name!r} ({kind}) needs {', '.join(missing)}: {builder.example}")
        if name in terms:
            raise UsageError(f"two rewards are named {name!r}; give them distinct names")
        terms[name] = (weight, builder.build(spec, d))
    return WeightedSum(terms)


def reward_from_config(rewards_config, device=None, specs: list[dict] | None = None) -> WeightedSum:
    """The reward a `RewardsConfig` describes: `build_reward` of its terms (or of `specs`,
    e.g. judges or slider weights), with every model and weights default taken from it."""
    r = rewards_config
    defaults = Defaults(
        device=device,
        clip_model_name=r.clip_model,
        clip_pretrained=r.clip_pretrained,
        aesthetic_weights=r.aesthetic_weights,
        pickscore_model=r.pickscore_model,
        pickscore_processor=r.pickscore_processor,
        hps_model=r.hps_model,
        hps_weights=r.hps_weights,
    )
    return build_reward(r.terms if specs is None else specs, defaults)
