"""The math as plain functions: log-probabilities, masked statistics, GAE, PPO's loss and KL
control, and the group-relative advantages and losses of GRPO and RLOO.

Shapes: `[batch, response_len]` tensors are aligned on the first response token; `mask` is 1
for a real response token and 0 for padding after the response ends.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..errors import UsageError


def logprobs_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Log-probability of each label. logits `[..., vocab]`, labels `[...]` -> `[...]`."""
    logp = F.log_softmax(logits.float(), dim=-1)
    return torch.gather(logp, -1, labels.unsqueeze(-1)).squeeze(-1)


def entropy_from_logprobs(all_logprobs: torch.Tensor) -> torch.Tensor:
    """Entropy from a normalised log-softmax (cheaper than from logits). `[..., vocab]` -> `[...]`."""
    return -(all_logprobs.exp() * all_logprobs).sum(-1)


def _all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        t = t.clone()
        dist.all_reduce(t)
    return t


def masked_mean(values: torch.Tensor, mask: torch.Tensor, global_batch: bool = False) -> torch.Tensor:
    """Mean over the positions where `mask` is 1 (across processes if `global_batch`)."""
    sums = torch.stack([(values * mask).sum(), mask.sum().to(values.dtype)])
    if global_batch:
        sums = _all_reduce_sum(sums)
    return sums[0] / sums[1].clamp(min=1)


def masked_var(
    values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True, global_batch: bool = False
) -> torch.Tensor:
    """Variance over the positions where `mask` is 1 (Bessel-corrected when `unbiased`)."""
    mean = masked_mean(values, mask, global_batch)
    sums = torch.stack([((values - mean) ** 2 * mask).sum(), mask.sum().to(values.dtype)])
    if global_batch:
        sums = _all_reduce_sum(sums)
    sq, count = sums[0], sums[1]
    if unbiased and count > 1:
        return sq / (count - 1)
    return sq / count.clamp(min=1)


def whiten(
    values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, global_batch: bool = False
) -> torch.Tensor:
    """Normalise to unit variance over the masked positions of the whole batch.

    Statistics are taken over every real token of the batch at once, so a one-token response
    is whitened like any other (per-sequence whitening divides by zero there).
    """
    mean = masked_mean(values, mask, global_batch)
    var = masked_var(values, mask, global_batch=global_batch)
    out = (values - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        out = out + mean
    return out * mask


def compute_advantages(
    values: torch.Tensor, rewards: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over `[batch, response_len]` tensors.

    The value after the last real token is 0 (the episode ends there), so padding never leaks
    into the advantages. Returns `(advantages, returns)`, both zero where `mask` is 0.
    """
    values = values * mask
    rewards = rewards * mask
    steps = values.shape[1]
    last_gae = torch.zeros_like(values[:, 0])
    advantages = torch.zeros_like(values)
    for t in reversed(range(steps)):
        next_value = values[:, t + 1] if t + 1 < steps else torch.zeros_like(last_gae)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last_gae = (delta + gamma * lam * last_gae) * mask[:, t]
        advantages[:, t] = last_gae
    returns = advantages + values
    return advantages, returns


def clip_by_value(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    return torch.max(torch.min(x, high), low)


def ppo_loss(
    old_logprobs: torch.Tensor,
    values: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    logprobs: torch.Tensor,
    vpreds: torch.Tensor,
    mask: torch.Tensor,
    cliprange: float,
    cliprange_value: float,
    vf_coef: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped PPO policy loss plus `vf_coef` x clipped value loss, and their statistics.

    All inputs `[n, r_len]`: the rollout's log-probs and values, the advantages and returns,
    the current log-probs and values, and the mask of real tokens. Returns `(loss, stats)`,
    the statistics as 0-d tensors (token means, and the largest |ratio - 1|).
    """
    vpred_clipped = clip_by_value(vpreds, values - cliprange_value, values + cliprange_value)
    vf_losses1 = (vpreds - returns) ** 2
    vf_losses2 = (vpred_clipped - returns) ** 2
    vf_loss = 0.5 * masked_mean(torch.max(vf_losses1, vf_losses2), mask)
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    pg_losses1 = -advantages * ratio
    pg_losses2 = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    pg_loss = masked_mean(torch.max(pg_losses1, pg_losses2), mask)
    loss = pg_loss + vf_coef * vf_loss
    with torch.no_grad():
        per_token = {  # token means, taken in one reduction
            "ppo/policy/approxkl": 0.5 * log_ratio**2,
            "ppo/policy/policykl": -log_ratio,
            "ppo/policy/clipfrac": (pg_losses2 > pg_losses1).float(),
            "ppo/policy/ratio": ratio,
            "ppo/val/vpred": vpreds,
            "ppo/val/error": vf_losses1,
            "ppo/val/clipfrac": (vf_losses2 > vf_losses1).float(),
        }
        means = (torch.stack(list(per_token.values())) * mask).sum((1, 2)) / mask.sum().clamp(min=1)
        stats = {
            "ppo/loss/policy": pg_loss.detach(),
            "ppo/loss/value": vf_loss.detach(),
            "ppo/loss/total": loss.detach(),
            **dict(zip(per_token, means)),
            "ppo/policy/ratio_max_dev": ((ratio - 1).abs() * mask).max(),
        }
    return loss, stats


class AdaptiveKLController:
    """Adaptive KL coefficient (Ziegler et al. 2019): nudges the coefficient toward a target KL.

    `error = clip(kl / target - 1, -0.2, 0.2)`; `coef *= 1 + error * n_steps / horizon`.
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: float):
        self.value = init_kl_coef
        self.target = target
        self.horizon = horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1, -0.2), 0.2)
        self.value *= 1 + error * n_steps / self.horizon

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])


class FixedKLController:
    """A constant KL coefficient."""

    def __init__(self, kl_coef: float):
        self.value = kl_coef

    def update(self, current_kl: float, n_steps: int) -> None:
        pass

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])


class RunningMoments:
    """Running mean and standard deviation of scores (Chan et al. parallel update).

    With `torch.distributed` initialised, each update merges the scores of every process.
    """

    def __init__(self):
        self.mean = 0.0
        self.std = 1.0
        self.var = 1.0
        self.count = 1e-24

    @torch.no_grad()
    def update(self, xs: torch.Tensor) -> tuple[float, float]:
        """Fold a batch of scores in; returns the batch's own (mean, std)."""
        xs = xs.double()
        local = torch.stack(
            [xs.sum(), (xs * xs).sum(), torch.tensor(float(xs.numel()), dtype=xs.dtype, device=xs.device)]
        )
        total, total_sq, n = _all_reduce_sum(local).tolist()
        batch_mean = total / n
        batch_var = max(total_sq / n - batch_mean**2, 0.0)
        delta = batch_mean - self.mean
        tot_count = self.count + n
        m2 = self.var * self.count + batch_var * n + delta**2 * self.count * n / tot_count
        self.mean += delta * n / tot_count
        self.var = m2 / tot_count
        self.std = math.sqrt(self.var * tot_count / max(tot_count - 1, 1))
        self.count = tot_count
        return batch_mean, math.sqrt(batch_var * n / max(n - 1, 1))

    def state_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.std = float(state["mean"]), float(state["std"])
        self.var, self.count = float(state["var"]), float(state["count"])


# --------------------------------------------------------------------------- group-relative methods
# GRPO and RLOO (no value head): each sample is measured against the other samples of its
# group, the `group_size` consecutive samples drawn for one query.


def _groups(values: torch.Tensor, group_size: int) -> torch.Tensor:
    if values.dim() != 1 or len(values) % group_size:
        raise UsageError(f"{len(values)} values do not split into groups of {group_size}")
    return values.view(-1, group_size)


def _global_std(values: torch.Tensor) -> torch.Tensor:
    """Bessel-corrected standard deviation of `values [n]` over every process's values."""
    return masked_var(values, torch.ones_like(values), global_batch=True).sqrt()


def grpo_advantages(scores: torch.Tensor, group_size: int, scale: str = "group") -> torch.Tensor:
    """GRPO's advantage of each sample `[n]`: its score minus its group's mean, divided by
    (std + 1e-4) where std is the group's (`scale="group"`), the whole batch's over every
    process (`"batch"`), or not divided at all (`"none"`); stds are Bessel-corrected."""
    groups = _groups(scores, group_size)
    advantages = (groups - groups.mean(1, keepdim=True)).flatten()
    if scale == "group":
        std = groups.std(1).repeat_interleave(group_size)
    elif scale == "batch":
        std = _global_std(scores)
    elif scale == "none":
        return advantages
    else:
        raise UsageError(f"scale must be 'group', 'batch' or 'none', got {scale!r}")
    return advantages / (std + 1e-4)


def leave_one_out_advantages(rewards: torch.Tensor, group_size: int, normalize: bool = False) -> torch.Tensor:
    """RLOO's advantage of each sample `[n]`: its reward minus the mean reward of the other
    `group_size - 1` samples of its group; with `normalize`, then shifted and scaled to mean 0
    and std 1 over the whole batch (every process's samples; std + 1e-4)."""
    groups = _groups(rewards, group_size)
    baseline = (groups.sum(1, keepdim=True) - groups) / (group_size - 1)
    advantages = (groups - baseline).flatten()
    if normalize:
        ones = torch.ones_like(advantages)
        advantages = (advantages - masked_mean(advantages, ones, global_batch=True)) / (_global_std(advantages) + 1e-4)
    return advantages


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimate of KL(policy || reference) per token, never negative:
    `exp(ref - logp) - (ref - logp) - 1`."""
    delta = ref_logprobs - logprobs
    return torch.exp(delta) - delta - 1


def grpo_loss(
    old_logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor | None,
    advantages: torch.Tensor,
    logprobs: torch.Tensor,
    mask: torch.Tensor,
    eps_low: float,
    eps_high: float,
    beta: float,
    loss_type: str,
    max_completion_length: int,
    step_tokens: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """GRPO's clipped objective per token, `-min(rho * A, clip(rho, 1 - eps_low, 1 + eps_high) * A)`,
    plus `beta * k3_kl` per token when `beta > 0`, reduced by `loss_type`:

    - `grpo`: each sequence's token mean, then the mean over sequences;
    - `bnpo`: the token mean over this (mini)batch;
    - `dr_grpo`: the sum over tokens / (sequences x `max_completion_length`);
    - `dapo`: the sum over tokens / `step_tokens` (the tokens of the whole optimizer step over
      every process, divided by the number of processes: once gradients are averaged over
      processes, a token mean over the global batch).

    `old_logprobs`, `ref_logprobs`, `logprobs`, `mask`: `[n, r_len]`; `advantages`: `[n]`.
    Returns `(loss, stats)` with token-mean statistics.
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    adv = advantages[:, None]
    losses1 = -adv * ratio
    losses2 = -adv * torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)
    per_token = torch.max(losses1, losses2)
    kl = k3_kl(logprobs, ref_logprobs) if beta != 0 else torch.zeros_like(logprobs)
    if beta != 0:
        per_token = per_token + beta * kl
    total = (per_token * mask).sum()
    if loss_type == "grpo":
        loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)).mean()
    elif loss_type == "bnpo":
        loss = total / mask.sum().clamp(min=1)
    elif loss_type == "dr_grpo":
        loss = total / (len(per_token) * max_completion_length)
    elif loss_type == "dapo":
        loss = total / max(step_tokens, 1.0)
    else:
        raise UsageError(f"loss_type must be 'grpo', 'bnpo', 'dr_grpo' or 'dapo', got {loss_type!r}")
    with torch.no_grad():
        per_token_stats = {
            "policy/approxkl": 0.5 * log_ratio**2,
            "policy/policykl": -log_ratio,
            "policy/clipfrac": (losses2 > losses1).float(),
            "policy/ratio": ratio,
            "policy/kl": kl,
        }
        means = (torch.stack(list(per_token_stats.values())) * mask).sum((1, 2)) / mask.sum().clamp(min=1)
        stats = {
            "loss/policy": loss.detach(),
            "loss/total": loss.detach(),
            **dict(zip(per_token_stats, means)),
            "policy/ratio_max_dev": ((ratio - 1).abs() * mask).max(),
        }
    return loss, stats


def rloo_loss(
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    logprobs: torch.Tensor,
    mask: torch.Tensor,
    eps_low: float,
    eps_high: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """RLOO's clipped objective on whole sequences: with `rho = exp(sum_t logp - sum_t old_logp)`,
    the mean over sequences of `-min(rho * A, clip(rho, 1 - eps_low, 1 + eps_high) * A)`.

    `old_logprobs`, `logprobs`, `mask`: `[n, r_len]`; `advantages`: `[n]`. Returns `(loss,
    stats)` with sequence-mean statistics.
    """
    log_ratio = ((logprobs - old_logprobs) * mask).sum(1)
    ratio = torch.exp(log_ratio)
    losses1 = -advantages * ratio
    losses2 = -advantages * torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)
    loss = torch.max(losses1, losses2).mean()
    with torch.no_grad():
        stats = {
            "loss/policy": loss.detach(),
            "loss/total": loss.detach(),
            "policy/approxkl": (0.5 * log_ratio**2).mean(),
            "policy/policykl": (-log_ratio).mean(),
            "policy/clipfrac": (losses2 > losses1).float().mean(),
            "policy/ratio": ratio.mean(),
            "policy/ratio_max_dev": (ratio - 1).abs().max(),
        }
    return loss, stats
