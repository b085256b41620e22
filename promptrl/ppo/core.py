"""The PPO math as plain functions: log-probabilities, masked statistics, GAE, KL control.

Shapes: `[batch, response_len]` tensors are aligned on the first response token; `mask` is 1
for a real response token and 0 for padding after the response ends.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F


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
