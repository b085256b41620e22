"""One PPO implementation on the bench shapes, stepping on command (for `trl_side_by_side.py`).

    python bench/ppo_worker.py --impl promptrl|promptrl-recorded|trl --case fixed|varied [--threads 1]

Builds the tiny GPT-2 and the batch of `ppo_shapes.py`, prints `ready`, then for every `step`
line on stdin runs one `PPOTrainer.step(queries, responses, scores)` at the implementation's
default settings and prints `<cpu seconds> <wall seconds>`. Runs under promptrl's venv or under
trl 0.11.4's (it imports only what its `--impl` needs).

`promptrl-recorded` passes the step what `PromptTrainer` passes it: the policy's log-probs,
values and entropies as recorded while sampling (`PromptGenerator(..., record=True)`), so the
step skips its own pass over the policy. Here they are computed before each timed step with
the current weights (untimed), standing in for the sampling that produces them in training.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ppo_shapes import BATCH, EPOCHS, MINIBATCH, PAD_ID, VOCAB, make_data, tiny_gpt2  # noqa: E402


def promptrl_step(recorded: bool = False):
    from promptrl import PPOConfig, PPOTrainer, ValueHeadModel

    config = PPOConfig(batch_size=BATCH, mini_batch_size=MINIBATCH, ppo_epochs=EPOCHS)
    trainer = PPOTrainer(ValueHeadModel(tiny_gpt2()), None, None, config=config)
    if not recorded:
        return trainer.step
    from promptrl.ppo.trainer import PolicyRecord

    def record(queries, responses):
        rollout = trainer.rollout_pass(queries, responses)
        rows = [
            (rollout.logprobs[i, :n], rollout.values[i, :n], rollout.entropy[i, :n])
            for i, n in enumerate(len(r) for r in responses)
        ]
        return PolicyRecord(*(list(column) for column in zip(*rows)))

    return trainer.step, record


def trl_step():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast
    from trl import AutoModelForCausalLMWithValueHead, PPOConfig, PPOTrainer

    vocab = {f"t{i}": i for i in range(VOCAB)}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel(vocab, unk_token=f"t{PAD_ID}")),
        pad_token=f"t{PAD_ID}",
        eos_token="t1",
    )
    config = PPOConfig(batch_size=BATCH, mini_batch_size=MINIBATCH, ppo_epochs=EPOCHS, log_with=None)
    model = AutoModelForCausalLMWithValueHead.from_pretrained(tiny_gpt2())
    return PPOTrainer(config, model, None, tokenizer).step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", choices=["promptrl", "promptrl-recorded", "trl"], required=True)
    parser.add_argument("--case", choices=["fixed", "varied"], required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    record = None
    if args.impl == "promptrl-recorded":
        step, record = promptrl_step(recorded=True)
    else:
        step = promptrl_step() if args.impl == "promptrl" else trl_step()
    queries, responses, scores = make_data(varied=args.case == "varied")
    scores = list(scores)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "step":
            break
        extra = () if record is None else (record(queries, responses),)
        cpu, wall = time.process_time(), time.perf_counter()
        step(queries, responses, scores, *extra)
        print(f"{time.process_time() - cpu:.6f} {time.perf_counter() - wall:.6f}", flush=True)


if __name__ == "__main__":
    main()
