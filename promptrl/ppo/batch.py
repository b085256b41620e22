"""The batch a PPO step works on: its inputs checked, packed into padded tensors, and what the
no-grad rollout pass computes over them.

Every check runs before `PPOTrainer.step` changes any state, so bad input raises a ValueError
that names the sample and leaves model, optimizer, KL controller and score statistics alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UsageError


class PackedBatch:
    """Queries and responses packed into one padded tensor.

    input_ids / attention_mask / position_ids: `[n, q_len + r_len]`, laid out as
    `[left-padded query | response | right padding]` so responses start at the same column;
    response_mask: `[n, r_len]` (1 on real response tokens). The batch is packed once per step;
    `select` cuts each forward chunk and minibatch out of it.
    """

    def __init__(self, queries: Sequence[torch.Tensor], responses: Sequence[torch.Tensor], pad_id: int):
        n = len(queries)
        self.q_lens = [len(q) for q in queries]
        self.r_lens = [len(r) for r in responses]
        self.q_len = max(self.q_lens)
        self.r_len = max(self.r_lens)
        device = queries[0].device
        total = self.q_len + self.r_len
        self.input_ids = torch.full((n, total), pad_id, dtype=torch.long, device=device)
        self.attention_mask = torch.zeros((n, total), dtype=torch.long, device=device)
        for i, (q, r) in enumerate(zip(queries, responses)):
            start = self.q_len - len(q)
            end = self.q_len + len(r)
            self.input_ids[i, start : self.q_len] = q
            self.input_ids[i, self.q_len : end] = r
            self.attention_mask[i, start:end] = 1
        self.position_ids = (self.attention_mask.cumsum(1) - 1).clamp(min=0)
        self.response_mask = self.attention_mask[:, self.q_len :].float()

    def select(self, idx: list[int]) -> PackedBatch:
        """The samples `idx`, padded only to their own longest query and response: the columns
        cut away are padding in every selected row, so positions stay as they were."""
        out = PackedBatch.__new__(PackedBatch)
        out.q_lens = [self.q_lens[i] for i in idx]
        out.r_lens = [self.r_lens[i] for i in idx]
        out.q_len, out.r_len = max(out.q_lens), max(out.r_lens)
        rows = torch.tensor(idx, device=self.input_ids.device)
        columns = slice(self.q_len - out.q_len, self.q_len + out.r_len)
        for name in ("input_ids", "attention_mask", "position_ids"):
            setattr(out, name, getattr(self, name)[rows, columns])
        out.response_mask = self.response_mask[rows, : out.r_len]
        return out

    def minibatches(self, perm: torch.Tensor, size: int, group_by_length: bool, generator) -> list[list[int]]:
        """Split one epoch's random permutation into minibatches of `size` sample indices.

        With `group_by_length`, the permuted samples are stably sorted by (response, query)
        length before splitting, so a minibatch pads to little more than its own lengths, and
        the minibatches run in random order (drawn from `generator`).
        """
        size = min(size, len(perm))
        if group_by_length:
            lengths = torch.tensor([r * (self.q_len + 1) + q for q, r in zip(self.q_lens, self.r_lens)])
            perm = perm[torch.argsort(lengths[perm], stable=True)]
            chunks = perm.split(size)
            return [chunks[i].tolist() for i in torch.randperm(len(chunks), generator=generator)]
        return [chunk.tolist() for chunk in perm.split(size)]


@dataclass
class RolloutPass:
    """What the no-grad pass over the whole batch gives PPO: `[batch, max_response_len]`
    tensors aligned on the first response token, 0 on padding."""

    logprobs: torch.Tensor
    """The policy's log-prob of each response token (at the sampling temperature)."""
    ref_logprobs: torch.Tensor
    """The reference model's log-prob of each response token."""
    values: torch.Tensor
    """The policy's value of the state before each response token."""
    entropy: torch.Tensor
    """The entropy of the policy's next-token distribution at each response token."""
    mask: torch.Tensor
    """1 on real response tokens."""


@dataclass
class PolicyRecord:
    """The policy's own numbers for each sampled response token, recorded while sampling:
    1-D tensors, one per response, each as long as its response."""

    logprobs: list[torch.Tensor]
    """Log-prob of the sampled token under the full softmax at the sampling temperature."""
    values: list[torch.Tensor]
    """Value of the state before the token."""
    entropy: list[torch.Tensor]
    """Entropy of the distribution the token was drawn from."""


def check_recorded(recorded: PolicyRecord, responses: list[torch.Tensor]) -> None:
    """A ValueError unless `recorded` holds one finite number per response token."""
    for name in ("logprobs", "values", "entropy"):
        rows = getattr(recorded, name)
        if len(rows) != len(responses):
            raise UsageError(
                f"recorded.{name} has {len(rows)} rows for {len(responses)} responses; record the batch you pass."
            )
        for i, (row, response) in enumerate(zip(rows, responses)):
            if not isinstance(row, torch.Tensor) or row.shape != response.shape:
                shape = list(row.shape) if isinstance(row, torch.Tensor) else type(row).__name__
                raise UsageError(
                    f"recorded.{name}[{i}] is {shape} for a response of {len(response)} tokens; "
                    "record the responses exactly as you pass them (after cutting at the stop token)."
                )
            if not torch.isfinite(row).all():
                raise UsageError(f"recorded.{name}[{i}] holds non-finite values; sample again or pass recorded=None.")


def check_inputs(
    queries, responses, scores, batch_size: int, vocab_size: int, max_positions: int | None
) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """`step`'s inputs as lists of 1-D long tensors and a `[batch]` float tensor, or a ValueError
    that says what is wrong and what to pass instead."""
    queries = as_token_list(queries, "queries", vocab_size)
    responses = as_token_list(responses, "responses", vocab_size)
    scores = as_scores(scores)
    lengths = {"queries": len(queries), "responses": len(responses), "scores": len(scores)}
    if len(set(lengths.values())) != 1:
        raise UsageError(
            f"step() got lists of different lengths {lengths}; pass one query, response and score per sample."
        )
    if len(queries) != batch_size:
        raise UsageError(
            f"step() got {len(queries)} samples but batch_size is {batch_size}; "
            "pass exactly batch_size samples or set PPOConfig.batch_size."
        )
    for i, q in enumerate(queries):
        if len(q) == 0:
            raise UsageError(f"queries[{i}] is empty; each query needs at least one token.")
    for i, r in enumerate(responses):
        if len(r) == 0:
            raise UsageError(f"responses[{i}] is empty; drop samples whose response has no tokens.")
    if max_positions is not None:
        for i, (q, r) in enumerate(zip(queries, responses)):
            if len(q) + len(r) > max_positions:
                raise UsageError(
                    f"sample {i} has {len(q)} query + {len(r)} response tokens, more than the model's "
                    f"{max_positions} positions; shorten the query or max_new_tokens."
                )
    return queries, responses, scores


def pad_id(tokenizer, model) -> int:
    """The tokenizer's (else the model config's) pad token id, else its EOS id, else 0: any id
    works, padding is masked."""
    for source in (tokenizer, getattr(model, "config", None)):
        for key in ("pad_token_id", "eos_token_id"):
            value = getattr(source, key, None)
            if isinstance(value, int):
                return value
    return 0


def as_token_list(x, name: str, vocab_size: int) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        if x.dim() != 2:
            raise UsageError(
                f"{name} as a tensor must be 2-D [batch, len]; got shape {list(x.shape)}. Or pass a list of 1-D tensors."
            )
        x = list(x)
    if not isinstance(x, (list, tuple)):
        raise UsageError(f"{name} must be a list of 1-D token tensors; got {type(x).__name__}.")
    out = []
    for i, t in enumerate(x):
        if not isinstance(t, torch.Tensor):
            raise UsageError(f"{name}[{i}] must be a torch.Tensor of token ids; got {type(t).__name__}.")
        if t.dim() != 1:
            raise UsageError(
                f"{name}[{i}] has shape {list(t.shape)}; pass 1-D token tensors (e.g. tensor[0] of a [1, len] batch)."
            )
        if t.dtype.is_floating_point or t.dtype == torch.bool or t.is_complex():
            raise UsageError(f"{name}[{i}] has dtype {t.dtype}; token ids must be an integer tensor (torch.long).")
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= vocab_size):
            raise UsageError(
                f"{name}[{i}] holds token ids outside the model's vocabulary [0, {vocab_size}): "
                f"min {int(t.min())}, max {int(t.max())}. Use the tokenizer that matches the model."
            )
        out.append(t.long())
    return out


def as_scores(scores) -> torch.Tensor:
    if isinstance(scores, torch.Tensor):
        if scores.dim() > 1 and not (scores.dim() == 2 and scores.shape[1] == 1):
            raise UsageError(f"scores as a tensor must be 1-D [batch]; got shape {list(scores.shape)}.")
        values = scores.detach().reshape(-1)
    else:
        if not isinstance(scores, (list, tuple)):
            raise UsageError(f"scores must be a list of scalars or a 1-D tensor; got {type(scores).__name__}.")
        items = []
        for i, s in enumerate(scores):
            if isinstance(s, torch.Tensor):
                if s.numel() != 1:
                    raise UsageError(f"scores[{i}] has shape {list(s.shape)}; each score must be a scalar.")
                s = s.detach().reshape(()).float().cpu()
            elif isinstance(s, (int, float, np.number)) and not isinstance(s, bool):
                s = torch.tensor(float(s))
            else:
                raise UsageError(
                    f"scores[{i}] is a {type(s).__name__}; each score must be a number or a scalar tensor."
                )
            items.append(s)
        values = torch.stack(items) if items else torch.zeros(0)
    values = values.float()
    bad = (~torch.isfinite(values)).nonzero().flatten().tolist()
    if bad:
        raise UsageError(f"scores hold non-finite values at positions {bad}; check the reward function.")
    return values
