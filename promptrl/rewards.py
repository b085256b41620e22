"""Image rewards: turn each rendered image into one number for PPO.

The reward protocol
-------------------
A reward is any callable::

    reward(images, prompts, ideas) -> rewards

- `images`: `[batch, 3, H, W]` float tensor in [0, 1] (on the renderer's device);
- `prompts`: the `batch` prompts as rendered (after truncation to the token limit);
- `ideas`: the `batch` short ideas the prompts were generated from;
- returns `batch` finite numbers, higher is better: a tensor, array or list of shape
  `[batch]` or `[batch, 1]`.

A plain function works::

    def redness(images, prompts, ideas):
        return images[:, 0].mean(dim=(1, 2)) - images[:, 1:].mean(dim=(1, 2, 3))

`call_reward` calls user code and turns every way it can fail (an exception, a wrong
shape, NaN, a string) into a `RewardError` that names the reward and says what was
expected. `WeightedSum` mixes rewards and `score` returns the total with each component,
for logging. The built-in rewards are the LAION aesthetic predictor (`AestheticReward`) and
CLIP image-idea similarity (`ClipSimilarityReward`) in `clip_rewards.py`, the
human-preference models PickScore (`PickScoreReward`) and HPSv2.1 (`HPSReward`) in
`preference_rewards.py`, and here a guard against reward hacking by piling up modifiers
(`PromptPenalty`). `build_reward` assembles them from config specs, `reward_from_config`
from a `RewardsConfig`; `baselines.py` normalises the total before PPO sees it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence

import numpy as np
import torch

from promptrl.clip_rewards import AESTHETIC_CLIP, AestheticReward, ClipSimilarityReward
from promptrl.embedders import ClipModel, TransformersClip
from promptrl.preference_rewards import (
    HPS_MODEL,
    HPS_WEIGHTS,
    PICKSCORE_MODEL,
    PICKSCORE_PROCESSOR,
    HPSReward,
    PickScoreReward,
    hps_clip,
)

RewardFn = Callable[[torch.Tensor, list[str], list[str]], "torch.Tensor | Sequence[float]"]


class RewardError(ValueError):
    """A reward function raised, or returned something that is not one finite number per image."""


def reward_name(fn: Callable) -> str:
    """The name a reward is logged under: a function's `__name__`, else its class name."""
    return getattr(fn, "__name__", None) or type(fn).__name__


def _describe(value) -> str:
    if isinstance(value, torch.Tensor | np.ndarray):
        return f"a {type(value).__name__} of shape {list(value.shape)} and dtype {value.dtype}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, list | tuple):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"{type(value).__name__} {value!r}"[:80]


def _as_rewards(name: str, value, batch: int) -> torch.Tensor:
    """`value` as a float32 CPU tensor of shape `[batch]`, or a RewardError saying why not."""
    expected = (
        f"expected {batch} finite numbers, one per image: a tensor, array or list of shape [{batch}] or [{batch}, 1]"
    )
    try:
        if isinstance(value, str | bytes) or value is None:
            raise TypeError
        rewards = torch.as_tensor(value.detach() if isinstance(value, torch.Tensor) else value)
        if rewards.dtype.is_complex:
            raise TypeError
    except (TypeError, ValueError, RuntimeError):
        raise RewardError(f"reward {name!r} returned {_describe(value)}; {expected}") from None
    if rewards.dim() == 2 and rewards.shape[1] == 1:
        rewards = rewards[:, 0]
    if tuple(rewards.shape) != (batch,):
        raise RewardError(f"reward {name!r} returned {_describe(value)}; {expected}")
    rewards = rewards.to("cpu", torch.float32)
    bad = (~torch.isfinite(rewards)).nonzero().flatten().tolist()
    if bad:
        raise RewardError(
            f"reward {name!r} returned {len(bad)} non-finite values (NaN or inf) at positions {bad[:10]}; {expected}"
        )
    return rewards


def call_reward(name: str, fn: RewardFn, images: torch.Tensor, prompts: list[str], ideas: list[str]) -> torch.Tensor:
    """Call reward `fn` and check what it returns: float32 `[batch]` on the CPU.

    Raises `RewardError` naming the reward if `fn` raises or returns anything other than
    one finite number per image.
    """
    try:
        value = fn(images, prompts, ideas)
    except RewardError:
        raise
    except Exception as e:
        raise RewardError(f"reward {name!r} raised {type(e).__name__}: {e}") from e
    return _as_rewards(name, value, images.shape[0])


_STOPWORDS = frozenset(
    "a an the of in on at and or with by to for from into under over as is its his her their".split()
)


class PromptPenalty:
    """A non-positive reward against modifier piling, the classic reward hack.

    penalty = -(length_weight * max(0, words - max_words) / max_words
                + repetition_weight * repetition),
    where repetition is the larger of the fraction of duplicate comma-separated chunks and
    the fraction of duplicate words (stopwords aside). A short prompt without repeats scores 0.
    """

    def __init__(self, max_words: int = 40, length_weight: float = 1.0, repetition_weight: float = 1.0):
        self.max_words, self.length_weight = max_words, length_weight
        self.repetition_weight = repetition_weight

    def penalty(self, prompt: str) -> float:
        """The (non-positive) reward of one prompt."""
        words = re.findall(r"[\w']+", prompt.lower())
        chunks = [c.strip() for c in prompt.lower().split(",") if c.strip()]
        content = [w for w in words if w not in _STOPWORDS]
        repetition = max(
            1 - len(set(chunks)) / len(chunks) if chunks else 0.0,
            1 - len(set(content)) / len(content) if content else 0.0,
        )
        too_long = max(0, len(words) - self.max_words) / self.max_words
        return -(self.length_weight * too_long + self.repetition_weight * repetition)

    def __call__(self, images: torch.Tensor, prompts: list[str], ideas: list[str]) -> torch.Tensor:
        """Penalty per prompt, `[batch]`."""
        return torch.tensor([self.penalty(p) for p in prompts], dtype=torch.float32)


class WeightedSum:
    """A weighted mix of named rewards: `terms = {name: (weight, reward)}`.

    Called, it returns the total; `score` also returns each term, unweighted.
    """

    def __init__(self, terms: dict[str, tuple[float, RewardFn]]):
        if not terms:
            raise ValueError("WeightedSum needs at least one term")
        for name, term in terms.items():
            if not (isinstance(term, tuple) and len(term) == 2 and callable(term[1])):
                raise TypeError(f"term {name!r} must be (weight, reward_fn), got {term!r}")
        self.terms = dict(terms)

    def __call__(self, images: torch.Tensor, prompts: list[str], ideas: list[str]) -> torch.Tensor:
        """The weighted total, `[batch]`."""
        return score(self, images, prompts, ideas)[0]


def with_terms(reward: RewardFn, extra: dict[str, tuple[float, RewardFn]]) -> WeightedSum:
    """`reward` (a `WeightedSum`, or one function at weight 1) with the weighted terms `extra`
    added: your own rewards beside the built-in ones."""
    terms = dict(reward.terms) if isinstance(reward, WeightedSum) else {reward_name(reward): (1.0, reward)}
    clash = sorted(set(terms) & set(extra))
    if clash:
        raise ValueError(f"reward term name(s) {clash} are taken by the reward already; name yours differently")
    return WeightedSum({**terms, **extra})


def score(
    reward: RewardFn, images: torch.Tensor, prompts: list[str], ideas: list[str]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total reward `[batch]` and each component `[batch]` (unweighted), on the CPU.

    A `WeightedSum` contributes one component per term; any other reward one component
    named after it. Every call goes through `call_reward`.
    """
    batch = images.shape[0]
    if len(prompts) != batch or len(ideas) != batch:
        raise ValueError(
            f"got {batch} images, {len(prompts)} prompts and {len(ideas)} ideas; pass one prompt and one idea per image"
        )
    if not isinstance(reward, WeightedSum):
        name = reward_name(reward)
        total = call_reward(name, reward, images, prompts, ideas)
        return total, {name: total}
    components = {name: call_reward(name, fn, images, prompts, ideas) for name, (_, fn) in reward.terms.items()}
    total = sum(weight * components[name] for name, (weight, _) in reward.terms.items())
    return total, components


# --------------------------------------------------------------------------- from config

_SPEC_KEYS = {
    "aesthetic": {"weights"},
    "similarity": {"hinge", "scale", "against"},
    "penalty": {"max_words", "length_weight", "repetition_weight"},
    "pickscore": {"model", "processor", "against"},
    "hps": {"model", "weights", "against"},
    "callable": {"target"},
}


def import_target(target: str) -> Callable:
    """`"package.module:attribute"` -> the attribute."""
    module, sep, attr = target.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"callable target must look like 'module:function', got {target!r}")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{target} is not callable")
    return obj


ALL_WEIGHTS_ZERO = "Every reward weight is zero: give at least one reward a non-zero weight."


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
        raise ValueError(ALL_WEIGHTS_ZERO)
    return out


def build_reward(
    specs: list[dict],
    device: str | torch.device | None = None,
    clip_model_name: str = AESTHETIC_CLIP[0],
    clip_pretrained: str | None = AESTHETIC_CLIP[1],
    aesthetic_weights: str | None = None,
    dtype: str | torch.dtype | None = None,
    pickscore_model: str = PICKSCORE_MODEL,
    pickscore_processor: str | None = PICKSCORE_PROCESSOR,
    hps_model: str = HPS_MODEL,
    hps_weights: str = HPS_WEIGHTS,
) -> WeightedSum:
    """A `WeightedSum` from config specs, e.g.::

        [{"type": "aesthetic", "weight": 1.0},
         {"type": "similarity", "weight": 0.5, "hinge": 0.3},
         {"type": "penalty", "weight": 1.0, "max_words": 30},
         {"type": "callable", "name": "mine", "target": "my_module:my_fn", "weight": 1.0}]

    Each term is named by its `name` (default: its type); `weight` defaults to 1. The
    CLIP-based terms share one CLIP model (`clip_model_name`/`clip_pretrained`). The
    preference models `pickscore` and `hps` take `model`/`processor`/`weights`
    from their spec, else from the `pickscore_*`/`hps_*` arguments.
    """
    terms: dict[str, tuple[float, RewardFn]] = {}
    for spec in specs:
        spec = dict(spec)
        kind = spec.pop("type", None)
        if kind not in _SPEC_KEYS:
            raise ValueError(f"unknown reward type {kind!r}; known types: {sorted(_SPEC_KEYS)}")
        name = spec.pop("name", kind)
        weight = float(spec.pop("weight", 1.0))
        unknown = set(spec) - _SPEC_KEYS[kind]
        if unknown:
            raise ValueError(
                f"reward {name!r} ({kind}): unknown keys {sorted(unknown)}; "
                f"known: {sorted(_SPEC_KEYS[kind] | {'name', 'weight'})}"
            )
        if name in terms:
            raise ValueError(f"two rewards are named {name!r}; give them distinct names")
        clip = (
            ClipModel.shared(clip_model_name, clip_pretrained, device, dtype)
            if kind in ("aesthetic", "similarity")
            else None
        )
        if kind == "aesthetic":
            fn = AestheticReward(clip, spec.get("weights", aesthetic_weights))
        elif kind == "similarity":
            fn = ClipSimilarityReward(clip, **spec)
        elif kind == "penalty":
            fn = PromptPenalty(**spec)
        elif kind == "pickscore":
            fn = PickScoreReward(
                TransformersClip.shared(
                    spec.pop("model", pickscore_model), spec.pop("processor", pickscore_processor), device, dtype
                ),
                **spec,
            )
        elif kind == "hps":
            clip = hps_clip(spec.pop("model", hps_model), spec.pop("weights", hps_weights), device, dtype)
            fn = HPSReward(clip, **spec)
        else:
            if "target" not in spec:
                raise ValueError(f"reward {name!r} (callable) needs a 'target': 'module:function'")
            fn = import_target(spec["target"])
        terms[name] = (weight, fn)
    return WeightedSum(terms)


def reward_from_config(rewards_config, device=None, specs: list[dict] | None = None) -> WeightedSum:
    """The reward a `RewardsConfig` describes: `build_reward` of its terms (or of `specs`,
    e.g. judges or slider weights), with every model and weights default taken from it."""
    r = rewards_config
    return build_reward(
        r.terms if specs is None else specs,
        device=device,
        clip_model_name=r.clip_model,
        clip_pretrained=r.clip_pretrained,
        aesthetic_weights=r.aesthetic_weights,
        pickscore_model=r.pickscore_model,
        pickscore_processor=r.pickscore_processor,
        hps_model=r.hps_model,
        hps_weights=r.hps_weights,
    )
