"""Baselines: one interface (`normalize`, `state_dict`, `load_state_dict`) for every
`rewards.baseline`; group normalisation against hand computations."""

from __future__ import annotations

import pytest
import torch

from promptrl.config import RewardsConfig
from promptrl.rewards.baselines import (
    BASELINES,
    GroupNormalization,
    NoBaseline,
    PerIdeaBaseline,
    make_baseline,
)


def test_make_baseline_builds_every_configurable_one():
    assert set(BASELINES) == {"none", "per_idea", "group"}
    assert isinstance(make_baseline("none"), NoBaseline)
    assert isinstance(make_baseline("group"), GroupNormalization)
    assert isinstance(make_baseline("per_idea"), PerIdeaBaseline)
    with pytest.raises(ValueError, match="unknown baseline 'mean'"):
        make_baseline("mean")
    with pytest.raises(ValueError, match="'rewards.baseline' must be one of 'none', 'per_idea', 'group'"):
        RewardsConfig(baseline="mean")


def test_no_baseline_passes_rewards_through():
    rewards = torch.tensor([1.0, 2.0, 3.0])
    assert make_baseline("none").normalize(["a", "a", "b"], rewards) is rewards


def test_group_normalization_by_hand():
    rewards = torch.tensor([1.0, 3.0, 5.0, 2.0])
    out = GroupNormalization().normalize(["a", "a", "b", "c"], rewards)
    # "a": mean 2, std (unbiased) sqrt(((1-2)^2 + (3-2)^2) / 1) = sqrt(2): -1/sqrt(2), +1/sqrt(2)
    # "b", "c": one sample each, std 0: (r - r) / eps = 0
    half = 2**-0.5 / (1 + 1e-6 / 2**0.5)
    torch.testing.assert_close(out, torch.tensor([-half, half, 0.0, 0.0]))


def test_stateless_baselines_checkpoint_nothing():
    for name in ("none", "group"):
        baseline = make_baseline(name)
        assert baseline.state_dict() == {}
        baseline.load_state_dict({})
