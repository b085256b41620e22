"""One PPO implementation on the bench shapes, stepping on command (for `trl_side_by_side.py`).

    python bench/ppo_worker.py --impl promptrl|trl --case fixed|varied [--threads 1]

Builds the tiny GPT-2 and the batch of `ppo_shapes.py`, prints `ready`, then for every `step`
line on stdin runs one `PPOTrainer.step(queries, responses, scores)` at the implementation's
default settings and prints `<cpu seconds> <wall seconds>`. Runs under promptrl's venv or under
trl 0.11.4's (it imports only what its `--impl` needs).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ppo_shapes import BATCH, EPOCHS, MINIBATCH, PAD_ID, VOCAB, make_data, tiny_gpt2  # noqa: E402


def promptrl_step():
    from promptrl import PPOConfig, PPOTrainer, ValueHeadModel

    config = PPOConfig(batch_size=BATCH, mini_batch_size=MINIBATCH, ppo_epochs=EPOCHS)
    return PPOTrainer(ValueHeadModel(tiny_gpt2()), None, None, config=config).step


def trl_step():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast
    from trl import AutoModelForCausalLMWithValueHead, PPOConfig, PPOTrainer

    vocab = {f"t{i}": i for i in range(VOCAB)}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel(vocab, unk_token=f"t{PAD_ID}")),
        pad_token=f"t{PAD_ID}", eos_token="t1",
    )
    config = PPOConfig(batch_size=BATCH, mini_batch_size=MINIBATCH, ppo_epochs=EPOCHS, log_with=None)
    model = AutoModelForCausalLMWithValueHead.from_pretrained(tiny_gpt2())
    return PPOTrainer(config, model, None, tokenizer).step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", choices=["promptrl", "trl"], required=True)
    parser.add_argument("--case", choices=["fixed", "varied"], required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    step = promptrl_step() if args.impl == "promptrl" else trl_step()
    queries, responses, scores = make_data(varied=args.case == "varied")
    scores = list(scores)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "step":
            break
        cpu, wall = time.process_time(), time.perf_counter()
        step(queries, responses, scores)
        print(f"{time.process_time() - cpu:.6f} {time.perf_counter() - wall:.6f}", flush=True)


if __name__ == "__main__":
    main()
