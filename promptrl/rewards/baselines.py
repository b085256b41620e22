"""Reward baselines: what a reward is measured against before PPO sees it.

Some ideas make prettier images than others whatever the prompt, so the raw reward varies
across ideas for reasons the prompt is not responsible for. A baseline takes that part out:

- `NoBaseline` (`none`): the reward as it is;
- `GroupNormalization` (`group`): against the other samples of the same idea in this batch;
- `PerIdeaBaseline` (`per_idea`): against running statistics of each idea across steps.

Every baseline has `normalize(ideas, rewards) -> Tensor[batch]` and, for checkpoints,
`state_dict()` / `load_state_dict(state)`; `make_baseline(name)` builds one from the
config's `rewards.baseline`.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch

from ..errors import UsageError


class Baseline(Protocol):
    def normalize(self, ideas: list[str], rewards: torch.Tensor) -> torch.Tensor:
        """`[batch]` rewards -> `[batch]` scores for PPO; `ideas[i]` is sample i's idea."""
        ...

    def state_dict(self) -> dict:
        """What a checkpoint keeps (empty for a baseline without state)."""
        ...

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""
        ...


class NoBaseline:
    """The rewards unchanged."""

    def normalize(self, ideas: list[str], rewards: torch.Tensor) -> torch.Tensor:
        return rewards

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class GroupNormalization(NoBaseline):
    """`(r - mean) / (std + eps)` over the samples of the same idea in this batch.

    With one image seed per idea, samples of an idea differ only by their prompts, so this
    keeps exactly the part of the reward the prompt is responsible for. Stateless.
    """

    def __init__(self, eps: float = 1e-6):
        self.eps = eps

    def normalize(self, ideas: list[str], rewards: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(rewards, dtype=torch.float32)
        groups: dict[str, list[int]] = {}
        for i, idea in enumerate(ideas):
            groups.setdefault(idea, []).append(i)
        for rows in groups.values():
            values = rewards[rows].float()
            std = values.std() if len(rows) > 1 else torch.zeros(())
            out[rows] = (values - values.mean()) / (std + self.eps)
        return out


class PerIdeaBaseline:
    """Running mean and std of the reward per idea, to normalise rewards across ideas.

    Some ideas make prettier images than others whatever the prompt; normalising per idea
    rewards a prompt for beating its idea's usual score. The statistics average all
    rewards seen while fewer than `1 / (1 - momentum)` have been seen, then decay
    exponentially, so they follow the improving policy.
    """

    def __init__(self, momentum: float = 0.9, min_count: int = 2, eps: float = 1e-6):
        if not 0 <= momentum < 1:
            raise UsageError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum, self.min_count, self.eps = momentum, min_count, eps
        self.stats: dict[str, list[float]] = {}  # idea -> [count, mean, var]

    def normalize(self, ideas: list[str], rewards: torch.Tensor) -> torch.Tensor:
        """`(r - mean_idea) / (std_idea + eps)` per sample `[batch]`, using statistics
        from before this batch, then updates them. Ideas seen fewer than `min_count` times
        use the batch's mean and std instead."""
        rewards = torch.as_tensor(rewards, dtype=torch.float32).flatten()
        if len(ideas) != rewards.shape[0]:
            raise UsageError(f"got {len(ideas)} ideas for {rewards.shape[0]} rewards")
        batch_mean, batch_std = rewards.mean().item(), rewards.std(unbiased=False).item()
        mean, std = [], []
        for idea in ideas:
            count, m, var = self.stats.get(idea, (0, 0.0, 0.0))
            seen = count >= self.min_count
            mean.append(m if seen else batch_mean)
            std.append(math.sqrt(var) if seen else batch_std)
        out = (rewards - torch.tensor(mean)) / (torch.tensor(std) + self.eps)
        for idea, r in zip(ideas, rewards.tolist()):
            self._update(idea, r)
        return out

    def _update(self, idea: str, r: float) -> None:
        count, mean, var = self.stats.get(idea, (0, 0.0, 0.0))
        count += 1
        alpha = max(1 / count, 1 - self.momentum)  # exact average first, then exponential
        delta = r - mean
        mean += alpha * delta
        var = (1 - alpha) * (var + alpha * delta * delta)
        self.stats[idea] = [count, mean, var]

    def state_dict(self) -> dict:
        """Settings and statistics, for checkpoints."""
        return {
            "momentum": self.momentum,
            "min_count": self.min_count,
            "eps": self.eps,
            "stats": {idea: list(s) for idea, s in self.stats.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""
        self.momentum, self.min_count, self.eps = (
            state["momentum"],
            state["min_count"],
            state["eps"],
        )
        self.stats = {idea: list(s) for idea, s in state["stats"].items()}


BASELINES = {"none": NoBaseline, "per_idea": PerIdeaBaseline, "group": GroupNormalization}
"""The values of `rewards.baseline`, and what each builds."""


def make_baseline(name: str) -> Baseline:
    """The baseline `rewards.baseline` names, with its default settings."""
    if name not in BASELINES:
        raise UsageError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
    return BASELINES[name]()
