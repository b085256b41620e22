"""Seconds per PPO step: promptrl's PPOTrainer.step against a plain-torch loop.

The plain loop does only the passes PPO cannot avoid: a no-grad forward of the policy and of
the reference over the batch, then `ppo_epochs` x (batch / minibatch) forward + backward +
AdamW steps on a `GPT2LMHeadModel` with a `Linear` value head, plus the few tensor ops of the
loss. Two cases:

- fixed: every query 8 tokens, every response 32 tokens;
- varied: responses of 4..32 tokens; the plain loop pads every response to 32. promptrl pads
  each forward chunk and minibatch to its own longest sample and, by default
  (`group_by_length`), puts samples of similar length in one minibatch; uniform random
  minibatches of 16 (`group_by_length=False`) still hold a ~30-token response.

The shapes and data are `ppo_shapes.py`'s, shared with `trl_side_by_side.py` (promptrl beside
trl 0.11.4).

Usage: python bench/ppo_step.py [--steps 5] [--warmup 2] [--forward-batch-size 16] [--clock cpu --threads 1]

On a busy shared machine two torch threads can run 5-10x slower than one, and wall times then
say nothing: compare with `--threads 1 --clock cpu` there.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GPT2LMHeadModel

from promptrl import PPOConfig, PPOTrainer, ValueHeadModel
from promptrl.ppo.core import compute_advantages, masked_mean, whiten

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ppo_shapes import (  # noqa: E402
    BATCH,
    EPOCHS,
    HEADS,
    HIDDEN,
    LAYERS,
    MINIBATCH,
    PAD_ID,
    QUERY_LEN,
    RESPONSE_LEN,
    VOCAB,
    make_data,
    tiny_gpt2,
)


class PlainPPO:
    """The minimum: fixed-shape padded tensors, one forward per pass, no statistics."""

    def __init__(self, lm: GPT2LMHeadModel, kl_coef: float = 0.2, cliprange: float = 0.2, vf_coef: float = 0.1):
        self.lm = lm.train()
        self.v_head = nn.Linear(HIDDEN, 1)
        self.ref = copy.deepcopy(lm).eval().requires_grad_(False)
        self.opt = torch.optim.AdamW(list(lm.parameters()) + list(self.v_head.parameters()), lr=1.41e-5)
        self.kl_coef, self.cliprange, self.vf_coef = kl_coef, cliprange, vf_coef

    def _pass(self, lm, ids, attn, with_values=True):
        out = lm(input_ids=ids, attention_mask=attn, output_hidden_states=with_values)
        logits = out.logits[:, QUERY_LEN - 1 : -1]
        logp = torch.gather(F.log_softmax(logits, -1), -1, ids[:, QUERY_LEN:, None]).squeeze(-1)
        values = self.v_head(out.hidden_states[-1][:, QUERY_LEN - 1 : -1]).squeeze(-1) if with_values else None
        return logp, values

    def step(self, queries, responses, scores):
        # Queries are all QUERY_LEN long; responses are right-padded to RESPONSE_LEN.
        n = len(queries)
        ids = torch.full((n, QUERY_LEN + RESPONSE_LEN), PAD_ID, dtype=torch.long)
        attn = torch.zeros_like(ids)
        for i, (q, r) in enumerate(zip(queries, responses)):
            ids[i, :QUERY_LEN] = q
            ids[i, QUERY_LEN : QUERY_LEN + len(r)] = r
            attn[i, : QUERY_LEN + len(r)] = 1
        mask = attn[:, QUERY_LEN:].float()
        with torch.no_grad():
            old_logp, old_values = self._pass(self.lm, ids, attn)
            ref_logp, _ = self._pass(self.ref, ids, attn, with_values=False)
            rewards = -self.kl_coef * (old_logp - ref_logp) * mask
            rewards[torch.arange(n), mask.sum(1).long() - 1] += scores
            advantages, returns = compute_advantages(old_values * mask, rewards, mask, 1.0, 0.95)
            advantages = whiten(advantages, mask)
        for _ in range(EPOCHS):
            for idx in torch.randperm(n).split(MINIBATCH):
                logp, vpred = self._pass(self.lm, ids[idx], attn[idx])
                m = mask[idx]
                ratio = torch.exp(logp - old_logp[idx])
                adv = advantages[idx]
                pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - self.cliprange, 1 + self.cliprange))
                v_clip = old_values[idx] + (vpred - old_values[idx]).clamp(-0.2, 0.2)
                vf = 0.5 * torch.max((vpred - returns[idx]) ** 2, (v_clip - returns[idx]) ** 2)
                loss = masked_mean(pg, m) + self.vf_coef * masked_mean(vf, m)
                loss.backward()
                self.opt.step()
                self.opt.zero_grad(set_to_none=True)


def seconds_per_step(steps_by_name: dict, data, steps: int, warmup: int, clock) -> dict[str, float]:
    """Median seconds per step of each callable; their steps alternate so load drifts hit both."""
    times = {name: [] for name in steps_by_name}
    for i in range(warmup + steps):
        names = list(steps_by_name) if i % 2 == 0 else list(reversed(steps_by_name))
        for name in names:
            t0 = clock()
            steps_by_name[name](*data)
            if i >= warmup:
                times[name].append(clock() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per case (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--forward-batch-size", type=int, default=16, help="promptrl's forward_batch_size")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall: elapsed time; cpu: this process's CPU time, steadier on a shared machine (use with --threads 1)",
    )
    args = parser.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    torch.set_num_threads(args.threads)

    config = PPOConfig(
        batch_size=BATCH, mini_batch_size=MINIBATCH, forward_batch_size=args.forward_batch_size, ppo_epochs=EPOCHS
    )
    print(
        f"tiny GPT-2 (hidden {HIDDEN}, {LAYERS} layers, {HEADS} heads, vocab {VOCAB}), batch {BATCH}, "
        f"query {QUERY_LEN} + response {RESPONSE_LEN}, {EPOCHS} epochs x minibatch {MINIBATCH}, "
        f"forward_batch_size {args.forward_batch_size}, {torch.get_num_threads()} threads; "
        f"median {args.clock} time of {args.steps} steps after {args.warmup} warm-up"
    )
    cases = [
        ("fixed", "promptrl", config),
        ("varied", "promptrl", config),
        ("varied", "promptrl group_by_length=False", replace(config, group_by_length=False)),
    ]
    for case, name, cfg in cases:
        data = make_data(varied=case == "varied")
        trainer = PPOTrainer(ValueHeadModel(tiny_gpt2()), None, None, config=cfg)
        plain = PlainPPO(tiny_gpt2())
        timed = seconds_per_step({"promptrl": trainer.step, "plain": plain.step}, data, args.steps, args.warmup, clock)
        ours, base = timed["promptrl"], timed["plain"]
        label = "plain torch" if case == "fixed" else "plain torch padded to 32"
        print(f"{case:>6}: {name} {ours:.3f} s/step | {label} {base:.3f} s/step | ratio {ours / base:.2f}")


if __name__ == "__main__":
    main()
