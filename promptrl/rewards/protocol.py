"""The reward protocol: what a reward is, how it is called and checked, and how rewards mix.

A reward is any callable:

    reward(images, prompts, ideas) -> rewards

- `images`: `[batch, 3, H, W]` float tensor in [0, 1] (on the renderer's device);
- `prompts`: the `batch` prompts as rendered (after truncation to the token limit);
- `ideas`: the `batch` short ideas the prompts were generated from;
- returns `batch` finite numbers, higher is better: a tensor, array or list of shape
  `[batch]` or `[batch, 1]`.

A plain function works:

    def redness(images, prompts, ideas):
        return images[:, 0].mean(dim=(1, 2)) - images[:, 1:].mean(dim=(1, 2, 3))

`call_reward` calls user code and turns every way it can fail (an exception, a wrong
shape, NaN, a string) into a `RewardError` that names the reward and says what was
expected. `WeightedSum` mixes rewards and `score` returns the total with each component,
for logging.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..errors import UsageError

RewardFn = Callable[[torch.Tensor, list[str], list[str]], "torch.Tensor | Sequence[float]"]
"""`(images, prompts, ideas) -> [batch]` numbers: the protocol every reward follows."""


class RewardError(UsageError):
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


class WeightedSum:
    """A weighted mix of named rewards: `terms = {name: (weight, reward)}`.

    Called, it returns the total; `score` also returns each term, unweighted.
    """

    def __init__(self, terms: dict[str, tuple[float, RewardFn]]):
        if not terms:
            raise UsageError("WeightedSum needs at least one term")
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
        raise UsageError(f"reward term name(s) {clash} are taken by the reward already; name yours differently")
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
        raise UsageError(
            f"got {batch} images, {len(prompts)} prompts and {len(ideas)} ideas; pass one prompt and one idea per image"
        )
    if not isinstance(reward, WeightedSum):
        name = reward_name(reward)
        total = call_reward(name, reward, images, prompts, ideas)
        return total, {name: total}
    components = {name: call_reward(name, fn, images, prompts, ideas) for name, (_, fn) in reward.terms.items()}
    total = sum(weight * components[name] for name, (weight, _) in reward.terms.items())
    return total, components
