"""GRPO and RLOO: policy optimisation against a group baseline, with no value head.

A batch is groups of `group_size` consecutive samples, each group one query's samples (an
idea's prompts). Every sample is measured against its own group, so no value head is trained
and none is saved. One step:

1. rollout pass (no grad): the policy's log-probs (or those it recorded while sampling), and
   the reference's only when the KL term needs them (`beta > 0`);
2. advantages, one per sample: GRPO's `(r - group mean) / (std + 1e-4)` (`scale_rewards`:
   the group's std, the batch's or none); RLOO's reward (the score minus `beta` x the
   sequence's summed log-ratio to the reference) minus the mean reward of the group's others;
3. `num_iterations` passes over shuffled minibatches of GRPO's clipped per-token loss (plus
   `beta` x the k3 KL per token), reduced by `loss_type`, or RLOO's clipped loss on the
   sequence log-prob.

Everything else is `PPOTrainer`'s: the input checks and packing, the minibatches and gradient
accumulation, the ratio and early-stopping guards, global statistics, checkpoint state, and
(in `PromptTrainer`) the recorded log-probs and the non-finite rollback.
"""

from __future__ import annotations

import torch

from ..errors import UsageError
from ..timing import Stopwatch
from .batch import PackedBatch, PolicyRecord, check_recorded
from .config import GRPOConfig, PPOConfig, RLOOConfig
from .core import grpo_advantages, grpo_loss, leave_one_out_advantages, rloo_loss
from .stats import group_stats
from .trainer import PPOTrainer
from .value_head import ValueHeadModel


class GroupTrainer(PPOTrainer):
    """What GRPO and RLOO share; use `GRPOTrainer` or `RLOOTrainer`.

    Args:
        model: the policy (`ValueHeadModel`); its value head is frozen (not trained, not used).
        ref_model: the frozen reference, used only when `settings.beta > 0`. None: for a LoRA
            policy, the same weights with the adapter disabled; otherwise a frozen deep copy of
            `model` (made only when `beta > 0`).
        tokenizer: used for its pad token id only.
        config: the `PPOConfig` settings the algorithms share (lr, batch and minibatch sizes,
            gradient accumulation and clipping, `cliprange` as the lower clip epsilon, the
            guards, score scaling, temperature, mixed precision, seed).
        settings: the algorithm's own (`GRPOConfig` / `RLOOConfig`).
        group_size: samples per query; `config.batch_size` must be a multiple of it.
    """

    algorithm = ""
    settings_class: type = GRPOConfig

    def __init__(
        self,
        model: ValueHeadModel,
        ref_model: ValueHeadModel | None = None,
        tokenizer=None,
        config: PPOConfig | None = None,
        settings: GRPOConfig | RLOOConfig | None = None,
        group_size: int = 2,
        optimizer: torch.optim.Optimizer | None = None,
        accelerator=None,
        **ppo_params,
    ):
        self.settings = settings if settings is not None else self.settings_class()
        if not isinstance(self.settings, self.settings_class):
            raise TypeError(f"settings must be a {self.settings_class.__name__}, got {type(self.settings).__name__}")
        if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 2:
            raise UsageError(
                f"{self.algorithm} compares each sample with the others of its group: group_size must be "
                f"at least 2, got {group_size!r} (in PromptTrainer: samples_per_idea)."
            )
        self.group_size = group_size
        config = PPOConfig.given(config, ppo_params)
        if config.batch_size % group_size:
            raise UsageError(
                f"batch_size ({config.batch_size}) must be a multiple of group_size ({group_size}): "
                "a batch is whole groups."
            )
        if isinstance(model, ValueHeadModel):
            model.v_head.requires_grad_(False)  # before the optimizer collects the trainable weights
        super().__init__(model, ref_model, tokenizer, config, optimizer, accelerator)
        self.eps_high = self.settings.epsilon_high if self.settings.epsilon_high is not None else self.config.cliprange

    @property
    def uses_reference(self) -> bool:
        return self.settings.beta != 0

    @property
    def stats_prefix(self) -> str:
        return self.algorithm

    # -- the step ----------------------------------------------------------------------------
    def _check_groups(self, queries: list[torch.Tensor]) -> None:
        k = self.group_size
        for g in range(len(queries) // k):
            first = queries[g * k]
            for j in range(1, k):
                other = queries[g * k + j]
                if len(other) != len(first) or not torch.equal(other, first):
                    raise UsageError(
                        f"samples {g * k} and {g * k + j} are in one group of {k} but have different queries: "
                        f"pass each query's {k} samples one after another."
                    )

    def advantages(
        self, scores: torch.Tensor, rollout, packed: PackedBatch
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`(advantages [n], KL to the reference per sequence [n], or None without a reference)`."""
        raise NotImplementedError

    def minibatch_loss(self, t: dict, logprobs, mask, scale, step_tokens):
        """`(loss, stats, stats weight, backward scale)` of one minibatch, given its rows `t`
        of the step's targets and its current log-probs."""
        raise NotImplementedError

    def step(self, queries, responses, scores, recorded: PolicyRecord | None = None) -> dict:
        """Run one step; arguments and return value as `PPOTrainer.step`, with the batch made of
        whole groups: samples `k * group_size ... (k + 1) * group_size - 1` share one query."""
        p = self.algorithm
        watch = Stopwatch()
        queries, responses, raw_scores = self._check_inputs(queries, responses, scores)
        self._check_groups(queries)
        if recorded is not None:
            check_recorded(recorded, responses)
        packed = PackedBatch(queries, responses, self.pad_id)

        with watch(f"time/{p}/forward_pass"):
            rollout = self._rollout_pass(packed, recorded)

        with watch(f"time/{p}/compute_rewards"):
            scores = self._scale_scores(raw_scores)
            advantages, kl = self.advantages(scores, rollout, packed)

        targets = {"old_logprobs": rollout.logprobs, "ref_logprobs": rollout.ref_logprobs, "advantages": advantages}
        with watch(f"time/{p}/optimize_step"):
            collected, progress = self._optimize(packed, targets, self.settings.num_iterations, group_by_length=False)

        with watch(f"time/{p}/calc_stats"):
            stats = group_stats(self.accelerator, p, raw_scores, rollout, advantages, kl, self.group_size)
            stats.update(self._training_stats(collected, progress, packed))
            stats["objective/kl_coef"] = self.settings.beta

        self.current_step += 1
        stats.update(watch.times)
        stats[f"time/{p}/total"] = watch.total()
        return stats

    def _train_minibatch(self, batch: PackedBatch, idx, targets, scale, step_tokens=None):
        t = self._rows(targets, idx, batch.r_len)
        with self.accelerator.autocast():
            logprobs, _, _ = self._forward(self.model, batch)
        loss, stats, weight, scale = self.minibatch_loss(t, logprobs, batch.response_mask, scale, step_tokens)
        return self._guard_and_backward(loss, {f"{self.algorithm}/{k}": v for k, v in stats.items()}, weight, scale)


class GRPOTrainer(GroupTrainer):
    """Group Relative Policy Optimization, as trl's `GRPOTrainer` defines it (see `GRPOConfig`)."""

    algorithm = "grpo"
    settings_class = GRPOConfig

    @property
    def uses_step_tokens(self) -> bool:
        return self.settings.loss_type == "dapo"

    def advantages(self, scores, rollout, packed):
        # dr_grpo's length constant: the configured one, else this batch's longest response
        self.max_completion_length = self.settings.max_completion_length or packed.r_len
        kl = None
        if self.uses_reference:
            kl = ((rollout.logprobs - rollout.ref_logprobs) * rollout.mask).sum(1)
        return grpo_advantages(scores, self.group_size, self.settings.scale_rewards), kl

    def minibatch_loss(self, t: dict, logprobs, mask, scale, step_tokens):
        """`core.grpo_loss` of one minibatch; returns `(loss, stats, stats weight, backward scale)`."""
        s = self.settings
        loss, stats = grpo_loss(
            t["old_logprobs"],
            t["ref_logprobs"],
            t["advantages"],
            logprobs,
            mask,
            self.config.cliprange,
            self.eps_high,
            s.beta,
            s.loss_type,
            self.max_completion_length,
            step_tokens or 0.0,
        )
        # dapo's loss is already a share of the optimizer step's tokens: it is not averaged
        # again over the step's minibatches, as the other types are.
        return loss, stats, mask.sum(), 1.0 if s.loss_type == "dapo" else scale


class RLOOTrainer(GroupTrainer):
    """REINFORCE Leave-One-Out, as trl's `RLOOTrainer` defines it (see `RLOOConfig`)."""

    algorithm = "rloo"
    settings_class = RLOOConfig

    def advantages(self, scores, rollout, packed):
        kl = None
        rewards = scores
        if self.uses_reference:
            kl = ((rollout.logprobs - rollout.ref_logprobs) * rollout.mask).sum(1)
            rewards = scores - self.settings.beta * kl
        return leave_one_out_advantages(rewards, self.group_size, self.settings.normalize_advantages), kl

    def minibatch_loss(self, t: dict, logprobs, mask, scale, step_tokens):
        """`core.rloo_loss` of one minibatch; returns `(loss, stats, stats weight, backward scale)`."""
        loss, stats = rloo_loss(
            t["old_logprobs"], t["advantages"], logprobs, mask, self.config.cliprange, self.eps_high
        )
        return loss, stats, torch.tensor(float(len(mask)), device=mask.device), scale


ALGORITHMS: dict[str, type[PPOTrainer]] = {"ppo": PPOTrainer, "grpo": GRPOTrainer, "rloo": RLOOTrainer}
"""Every algorithm by its config name (`TrainConfig.algorithm`)."""
