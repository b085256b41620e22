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
        local = torch.stack([xs.sum(), (xs * xs).sum(), torch.tensor(float(xs.numel()), dtype=xs.dtype, device=xs.device)])
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
