"""Prompt generation: `PromptGenerator` vs the plain `model.generate` call on the same batch.

    python bench/rollout.py [--ideas 32] [--repeats 5] [--model DIR] [--threads N]

Both sample the same number of new tokens from the same left-padded batch (the plain call is
given the same GenerationConfig); the difference is promptrl's work around it: templating,
tokenising, cutting responses at the stop token and decoding. Goal: within 5%. A third row,
`record=True`, also records each token's log-prob, entropy and value for PPO (what training
does, so that the PPO step can skip its own pass over the policy): its cost is a log-softmax
over the vocabulary and a value-head product per sampled token.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import AutoTokenizer

from promptrl.ideas import load_ideas
from promptrl.ppo.sampling import PromptGenerationConfig, PromptGenerator
from promptrl.ppo.value_head import ValueHeadModel
from promptrl.standins.tiny import tiny_assets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ideas", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--model", default=None, help="policy dir or hub name (default: the tiny policy)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    path = args.model or tiny_assets()["policy"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = ValueHeadModel.from_pretrained(path).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    ideas = (load_ideas("bundled") * 8)[: args.ideas]
    # min_new_tokens makes both sides produce the same number of tokens, so the timing compares
    # the same work whatever the sampled text.
    generator = PromptGenerator(
        model, tokenizer, PromptGenerationConfig(template="Idea: {idea}\nPrompt:", max_new_tokens=args.max_new_tokens)
    )
    gen_config = generator.generation_config(min_new_tokens=args.max_new_tokens)

    def ours():
        generator(ideas, min_new_tokens=args.max_new_tokens)

    def recording():
        generator(ideas, record=True, min_new_tokens=args.max_new_tokens)

    def plain():
        tokenizer.padding_side = "left"
        enc = tokenizer(generator.queries(ideas), return_tensors="pt", padding=True).to(device)
        model.pretrained_model.generate(**enc, generation_config=gen_config)

    runs = (("promptrl", ours), ("record=True", recording), ("plain generate", plain))
    times = {name: [] for name, _ in runs}
    for _, fn in runs:  # warm-up
        fn()
    for _ in range(args.repeats):  # alternate so load changes hit all alike
        for name, fn in runs:
            torch.manual_seed(0)
            t0 = time.perf_counter()
            fn()
            if device == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.ideas} ideas x {args.max_new_tokens} new tokens on {device}, median of {args.repeats}:")
    for name, t in med.items():
        print(f"  {name:15s} {t:.4f} s")
    print(f"  ratio promptrl / plain = {med['promptrl'] / med['plain generate']:.3f}")
    print(f"  ratio record=True / plain = {med['record=True'] / med['plain generate']:.3f}")


if __name__ == "__main__":
    main()
