"""How close promptrl's PPO step is to the passes no PPO step can skip, on the bench shapes.

    python bench/ppo_floor.py [--rounds 7] [--threads 1]

One round times, in CPU seconds on one torch thread and the same process:

- step: `PPOTrainer.step(queries, responses, scores)` at default settings;
- passes: what every PPO implementation with this loop has to compute, on promptrl's own
  `ValueHeadModel` (fixed lengths, no padding), with nothing around it:
  the no-grad forward of the policy and of the reference over the batch, `ppo_epochs` x
  (batch / minibatch) forward + backward passes of a minibatch, and as many gradient
  clippings and AdamW steps.

It prints the medians and step / passes: the step's own overhead (checks, packing, the loss,
statistics). `trl_side_by_side.py` puts the same step beside trl 0.11.4; a step can only get
further below trl than this floor by doing less work (the recorded path: no policy pass).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from promptrl import PPOConfig, PPOTrainer, ValueHeadModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ppo_shapes import BATCH, EPOCHS, MINIBATCH, QUERY_LEN, RESPONSE_LEN, VOCAB, make_data, tiny_gpt2  # noqa: E402


def cpu_seconds(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = PPOConfig(batch_size=BATCH, mini_batch_size=MINIBATCH, ppo_epochs=EPOCHS)
    trainer = PPOTrainer(ValueHeadModel(tiny_gpt2()), None, None, config=config)
    queries, responses, scores = make_data(varied=False)
    scores = list(scores)

    model, reference = ValueHeadModel(tiny_gpt2()), ValueHeadModel(tiny_gpt2()).eval()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, fused=True)
    ids = torch.randint(2, VOCAB, (BATCH, QUERY_LEN + RESPONSE_LEN - 1))  # the last token is not fed
    minibatches = EPOCHS * (BATCH // MINIBATCH)

    def forward(m, rows):
        logits, _, values = m(input_ids=rows, logits_to_keep=RESPONSE_LEN)
        return logits.log_softmax(-1)[..., 0], values

    def no_grad_passes():
        with torch.no_grad():
            for m in (model, reference):
                for start in range(0, BATCH, config.forward_batch_size):
                    forward(m, ids[start : start + config.forward_batch_size])

    def training_passes():
        for i in range(minibatches):
            logprobs, values = forward(model, ids[(i % (BATCH // MINIBATCH)) * MINIBATCH :][:MINIBATCH])
            (logprobs.mean() + values.mean()).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad()

    times: dict[str, list[float]] = {"step": [], "passes": []}
    for i in range(args.rounds + 2):  # two warm-up rounds
        step = cpu_seconds(lambda: trainer.step(queries, responses, scores))
        passes = cpu_seconds(no_grad_passes) + cpu_seconds(training_passes)
        if i >= 2:
            times["step"].append(step)
            times["passes"].append(passes)
    step, passes = (statistics.median(times[k]) for k in ("step", "passes"))
    ratios = sorted(a / b for a, b in zip(times["step"], times["passes"]))
    print(
        f"fixed lengths, {args.threads} thread(s), median CPU seconds of {args.rounds} rounds: "
        f"step {step:.3f} s, unavoidable passes {passes:.3f} s, step / passes {statistics.median(ratios):.2f}"
    )


if __name__ == "__main__":
    main()
