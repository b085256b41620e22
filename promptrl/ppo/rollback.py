"""A PPO step that undoes itself when it went non-finite: nothing is lost to one bad step."""

from __future__ import annotations

import copy
import logging
import math

import torch

from ..errors import UsageError
from .trainer import PPOTrainer

logger = logging.getLogger("promptrl")

MAX_BAD_STEPS = 3
"""Consecutive steps with a non-finite loss or weights (each rolled back) before the run stops."""


class NonFiniteError(UsageError):
    """Training diverged: several steps in a row gave a non-finite loss or weights. A usage error:
    the config's values (learning rate, reward scale) are what to change."""


class RollbackGuard:
    """Runs `ppo.step` and rolls it back when its loss or the new weights are not finite (a huge
    lr, or scores of 1e20, would otherwise write NaN weights into every later checkpoint).

    The rollback is reported in the step's statistics (`ppo/rolled_back`) and the log;
    `MAX_BAD_STEPS` in a row raise `NonFiniteError`. The snapshot costs one copy of the
    trainable weights and the optimizer state per step.
    """

    def __init__(self, ppo: PPOTrainer):
        self.ppo = ppo
        self.bad_steps = 0

    def step(self, queries, responses, scores, recorded=None) -> dict:
        trainable = [p for p in self.ppo.policy.parameters() if p.requires_grad]
        saved_weights = [p.detach().clone() for p in trainable]
        saved_state = copy.deepcopy(self.ppo.state_dict())
        stats = self.ppo.step(queries, responses, scores, recorded)
        losses = [v for k, v in stats.items() if "loss" in k and isinstance(v, (int, float))]
        finite = all(math.isfinite(v) for v in losses) and all(bool(torch.isfinite(p).all()) for p in trainable)
        stats = {**stats, "ppo/rolled_back": 0.0 if finite else 1.0}
        if finite:
            self.bad_steps = 0
            return stats
        with torch.no_grad():
            for p, saved in zip(trainable, saved_weights):
                p.copy_(saved)
        self.ppo.load_state_dict(saved_state)
        self.bad_steps += 1
        logger.warning(
            "PPO step %d gave a non-finite loss or weights; rolled back (%d in a row).",
            self.ppo.current_step + 1,
            self.bad_steps,
        )
        if self.bad_steps >= MAX_BAD_STEPS:
            raise NonFiniteError(
                f"{self.bad_steps} steps in a row gave a non-finite loss or weights and were "
                f"rolled back (lr {self.ppo.config.lr:g}); lower ppo.lr, set ppo.score_clip or "
                "check the rewards' scale. The last checkpoint holds the last good weights."
            )
        return stats
