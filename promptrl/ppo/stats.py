"""The statistics a PPO step returns, each the value over all processes.

With N processes, token means are taken over all tokens of all processes (weighted by each
process's token count), sample statistics over all samples, maxima over all processes.
Definitions that differ from trl's under the same name:

- `ppo/val/var_explained`: 1 - Var(returns - values) / Var(returns), on the rollout's values;
- `ppo/mean_non_score_reward`: the per-sequence sum of the KL penalty, averaged (trl 0.1's);
- `ppo/policy/entropy`: the policy's next-token entropy at each real response token, averaged,
  at the rollout (before the step's updates; trl averaged it over its training minibatches).
"""

from __future__ import annotations

import torch
from accelerate import Accelerator

from .batch import RolloutPass
from .core import _all_reduce_sum, masked_mean, masked_var

WEIGHT_KEY = "_weight"
"""Under this key a minibatch's statistics carry their weight (tokens, or sequences) over processes."""


def global_mean(local_means: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Token-weighted mean over processes of per-process token means `[..., k]`."""
    sums = torch.cat([local_means * tokens[..., None], tokens[..., None]], -1)
    sums = _all_reduce_sum(sums.float())
    return sums[..., :-1] / sums[..., -1:].clamp(min=1)


def minibatch_stats(collected: list[dict[str, torch.Tensor]], accelerator: Accelerator) -> dict[str, torch.Tensor]:
    """Per-minibatch statistics `{key: [n_minibatches]}` from each minibatch's local ones (which
    carry their weight under `WEIGHT_KEY`), each the value over all processes."""
    tokens = torch.stack([s.pop(WEIGHT_KEY) for s in collected]).float()
    keys = list(collected[0])
    means = [k for k in keys if not k.endswith("max_dev")]
    maxima = [k for k in keys if k.endswith("max_dev")]
    table = global_mean(torch.stack([torch.stack([s[k] for k in means]) for s in collected]).float(), tokens)
    out = {k: table[:, j] for j, k in enumerate(means)}
    for k in maxima:
        out[k] = accelerator.reduce(torch.stack([s[k] for s in collected]).float(), reduction="max")
    return {k: out[k] for k in keys}


@torch.no_grad()
def batch_stats(
    accelerator: Accelerator,
    scores: torch.Tensor,
    rollout: RolloutPass,
    kl: torch.Tensor,
    non_score: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
) -> dict:
    """The step's whole-batch statistics: floats, plus `objective/kl_dist` (KL per sequence) and
    `ppo/policy/advantages` (every real token's advantage) as numpy arrays."""
    gather = accelerator.gather
    mask, logprobs, values = rollout.mask, rollout.logprobs, rollout.values
    kl_per_seq = gather(kl.sum(1))
    scores = gather(scores.to(kl.device))

    def token_mean(x):
        return masked_mean(x, mask, global_batch=True)

    def token_var(x):
        return masked_var(x, mask, global_batch=True)

    returns_var = token_var(returns)
    stats = {
        "objective/kl": kl_per_seq.mean(),
        "objective/logprobs": token_mean(logprobs),
        "objective/ref_logprobs": token_mean(rollout.ref_logprobs),
        "objective/entropy": gather((-logprobs * mask).sum(1)).mean(),
        "ppo/policy/entropy": token_mean(rollout.entropy),
        "ppo/mean_non_score_reward": gather(non_score.sum(1)).mean(),
        "ppo/mean_scores": scores.mean(),
        "ppo/std_scores": scores.std() if len(scores) > 1 else torch.zeros(()),
        "ppo/policy/advantages_mean": token_mean(advantages),
        "ppo/returns/mean": token_mean(returns),
        "ppo/returns/var": returns_var,
        "ppo/val/mean": token_mean(values),
        "ppo/val/var": token_var(values),
        "ppo/val/var_explained": 1 - token_var(returns - values) / returns_var.clamp(min=1e-8),
    }
    names = list(stats)
    flat = torch.stack([stats[k].float() for k in names]).cpu().tolist()
    out = dict(zip(names, flat))
    out["objective/kl_dist"] = kl_per_seq.cpu().numpy()
    # Every process's real-token advantages: pad rows to one width, gather, keep real tokens.
    n = len(mask)
    chunks = gather(accelerator.pad_across_processes(torch.cat([advantages, mask]), dim=1)).split(2 * n)
    out["ppo/policy/advantages"] = torch.cat([c[:n][c[n:].bool()] for c in chunks]).cpu().numpy()
    return out


@torch.no_grad()
def group_stats(
    accelerator: Accelerator,
    prefix: str,
    scores: torch.Tensor,
    rollout: RolloutPass,
    advantages: torch.Tensor,
    kl: torch.Tensor | None,
    group_size: int,
) -> dict:
    """A GRPO or RLOO step's whole-batch statistics under `prefix`: floats, plus
    `<prefix>/policy/advantages` (one per sample) and, with a reference, `objective/kl_dist`
    (KL per sequence) as numpy arrays. `<prefix>/frac_zero_std_groups` is the share of groups
    whose samples all scored alike: their advantages are 0, so they teach nothing."""
    gather = accelerator.gather
    mask, logprobs = rollout.mask, rollout.logprobs
    scores = gather(scores.to(mask.device).float())
    every_advantage = gather(advantages.float())

    def token_mean(x):
        return masked_mean(x, mask, global_batch=True)

    stats = {
        "objective/logprobs": token_mean(logprobs),
        "objective/entropy": gather((-logprobs * mask).sum(1)).mean(),
        f"{prefix}/policy/entropy": token_mean(rollout.entropy),
        f"{prefix}/mean_scores": scores.mean(),
        f"{prefix}/std_scores": scores.std() if len(scores) > 1 else torch.zeros((), device=mask.device),
        f"{prefix}/frac_zero_std_groups": (scores.view(-1, group_size).std(1) == 0).float().mean(),
        f"{prefix}/advantages_mean": every_advantage.mean(),
        f"{prefix}/advantages_std": every_advantage.std() if len(every_advantage) > 1 else torch.zeros(()),
    }
    if kl is not None:
        kl_per_seq = gather(kl)
        stats["objective/kl"] = kl_per_seq.mean()
        stats["objective/ref_logprobs"] = token_mean(rollout.ref_logprobs)
    names = list(stats)
    out = dict(zip(names, torch.stack([stats[k].float().to(mask.device) for k in names]).cpu().tolist()))
    if kl is not None:
        out["objective/kl_dist"] = kl_per_seq.cpu().numpy()
    out[f"{prefix}/policy/advantages"] = every_advantage.cpu().numpy()
    return out
