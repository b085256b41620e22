"""Which algorithm learns best for the same samples? PPO, GRPO (each loss type) and RLOO.

Every algorithm gets the same samples per step (8 queries x 4 samples), the same number of
steps, the same optimiser settings (lr, batch and minibatch sizes) and its own defaults for the
rest: PPO trl 0.11.4's (value head, GAE, adaptive KL from 0.2, 4 epochs), GRPO trl's (beta 0,
group scaling, 1 iteration; each `loss_type`), RLOO trl's (beta 0.05, 1 iteration). Two tasks:

- `text`: a tiny random GPT-2 (vocabulary 16) writes up to 8 tokens, stopping at token 0 (its
  end of text); the reward is the number of tokens in {3, 7} over 8: known optimum 1.0 (eight
  of them), start ~0.1. Responses vary in length, as prompts do, so the GRPO loss types differ.
  Runs in seconds.
- `tiny`: the tiny preset's image loop (random-init stand-ins: the reward is the tiny aesthetic,
  similarity and penalty terms, a weak signal), through `PromptTrainer`.

For each run: the final reward (mean of the last quarter of the steps), the KL of the final
policy to the start (a Monte-Carlo estimate: fresh samples' summed log-ratio), distinct-2 of
those samples, and wall time. Across seeds: the mean with a 95% t-interval. A plot of the
reward curves goes to `--out`.

Usage: python bench/algorithms.py [--task text|tiny|both] [--seeds 5] [--steps 20] [--out runs/bench-algorithms]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import torch

from promptrl import PPOConfig, ValueHeadModel, respond_to_batch
from promptrl.ppo import ALGORITHMS, GRPOConfig, RLOOConfig

VARIANTS = {
    "ppo": ("ppo", {}),
    "ppo (scores normalised)": ("ppo", {"use_score_scaling": True, "use_score_norm": True}),
    "grpo (dapo)": ("grpo", {"loss_type": "dapo"}),
    "grpo (grpo)": ("grpo", {"loss_type": "grpo"}),
    "grpo (bnpo)": ("grpo", {"loss_type": "bnpo"}),
    "grpo (dr_grpo)": ("grpo", {"loss_type": "dr_grpo"}),
    "grpo (dapo, beta 0.04)": ("grpo", {"beta": 0.04}),
    "rloo": ("rloo", {}),
}
"""Name -> (algorithm, its settings beside the defaults). `ppo (scores normalised)` is the tiny
preset's PPO: scores scaled by their running mean and std, so the KL penalty's weight does not
depend on the reward's units (GRPO's group scaling does that for it)."""
QUERIES, GROUP, RESPONSE = 8, 4, 8
TARGET = torch.tensor([3, 7])
T975 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}
"""Student t quantiles (0.975) by degrees of freedom, for the 95% intervals over seeds."""


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval."""
    mean = statistics.mean(values)
    if len(values) < 2:
        return mean, float("nan")
    return mean, T975.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))


def distinct_2(sequences: list[list]) -> float:
    bigrams = [tuple(s[i : i + 2]) for s in sequences for i in range(len(s) - 1)]
    return len(set(bigrams)) / max(1, len(bigrams))


@torch.no_grad()
def sequence_logprobs(model: ValueHeadModel, queries: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
    """Summed log-prob of each response `[n]` (equal-length queries and responses)."""
    ids = torch.cat([queries, responses], 1)
    logits = model.pretrained_model(input_ids=ids).logits[:, queries.shape[1] - 1 : -1]
    return torch.log_softmax(logits.float(), -1).gather(-1, responses[..., None])[..., 0].sum(1)


def cut_at_end(response: torch.Tensor) -> torch.Tensor:
    """The response up to and including its first end-of-text token (0)."""
    ends = (response == 0).nonzero()
    return response[: int(ends[0]) + 1] if len(ends) else response


def make_trainer(name: str, model: ValueHeadModel, config: PPOConfig):
    algorithm, settings = VARIANTS[name]
    if algorithm == "ppo":
        return ALGORITHMS["ppo"](model, None, None, config=dataclasses.replace(config, **settings))
    cls = GRPOConfig if algorithm == "grpo" else RLOOConfig
    return ALGORITHMS[algorithm](model, None, None, config=config, settings=cls(**settings), group_size=GROUP)


def text_run(name: str, seed: int, steps: int, lr: float) -> dict:
    """One run of the text task."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        config = GPT2Config(
            vocab_size=16, n_embd=64, n_layer=2, n_head=2, n_positions=64, bos_token_id=0, eos_token_id=0
        )
        GPT2LMHeadModel(config).save_pretrained(tmp)
        model, start = ValueHeadModel.from_pretrained(tmp), ValueHeadModel.from_pretrained(tmp)
    n = QUERIES * GROUP
    trainer = make_trainer(name, model, PPOConfig(batch_size=n, forward_batch_size=n, mini_batch_size=8, lr=lr))
    curve, t0 = [], time.perf_counter()
    for _ in range(steps):
        queries = torch.randint(0, 16, (QUERIES, 4)).repeat_interleave(GROUP, 0)
        responses = [cut_at_end(r) for r in respond_to_batch(model, queries, txt_len=RESPONSE)]
        rewards = torch.tensor([torch.isin(r, TARGET).sum().item() / RESPONSE for r in responses])
        trainer.step(list(queries), responses, rewards)
        curve.append(rewards.mean().item())
    seconds = time.perf_counter() - t0
    queries = torch.randint(0, 16, (256, 4))
    responses = [cut_at_end(r) for r in respond_to_batch(model, queries, txt_len=RESPONSE)]
    kls = [
        (sequence_logprobs(model, q[None], r[None]) - sequence_logprobs(start, q[None], r[None])).item()
        for q, r in zip(queries, responses)
    ]
    return {
        "curve": curve,
        "final": statistics.mean(curve[-max(1, steps // 4) :]),
        "kl": statistics.mean(kls),
        "distinct_2": distinct_2([r.tolist() for r in responses]),
        "seconds": seconds,
    }


def tiny_run(name: str, seed: int, steps: int, lr: float) -> dict:
    """One run of the tiny preset's image loop."""
    from promptrl import PromptTrainer, load_config

    algorithm, settings = VARIANTS[name]
    overrides = [
        f"algorithm={algorithm}",
        *(["ppo.use_score_scaling=false", "ppo.use_score_norm=false", "ppo.score_clip=null"] if name == "ppo" else []),
        f"steps={steps}",
        f"seed={seed}",
        f"ppo.lr={lr}",
        f"ppo.batch_size={QUERIES * GROUP}",
        f"samples_per_idea={GROUP}",
        "rewards.baseline=none",
        "sft.enabled=false",
        "image_every=0",
        "save_every=0",
        "eval.heldout=0",
        "eval_ideas=1",
        "trackers=[]",
        "progress=false",
        *(f"{'ppo' if algorithm == 'ppo' else algorithm}.{k}={v}" for k, v in settings.items()),
    ]
    with tempfile.TemporaryDirectory() as out:
        trainer = PromptTrainer(load_config("tiny", None, [*overrides, f"output_dir={out}"]))
        t0 = time.perf_counter()
        history = trainer.train()
        seconds = time.perf_counter() - t0
        ideas = trainer.ideas[:32]
        torch.manual_seed(seed)
        rollout = trainer.generator(ideas)
        start = ValueHeadModel.from_pretrained(trainer.start_model).to(trainer.accelerator.device).eval()
        kls = []
        for q, r in zip(rollout.queries, rollout.responses):
            q, r = q[None].to(start.pretrained_model.device), r[None].to(start.pretrained_model.device)
            kls.append((sequence_logprobs(trainer.ppo.policy, q, r) - sequence_logprobs(start, q, r)).item())
    curve = [h["reward/total/mean"] for h in history]
    return {
        "curve": curve,
        "final": statistics.mean(curve[-max(1, steps // 4) :]),
        "kl": statistics.mean(kls),
        "distinct_2": statistics.mean(h["prompt/distinct_bigrams"] for h in history[-max(1, steps // 4) :]),
        "seconds": seconds,
    }


def table(task: str, results: dict[str, list[dict]]) -> str:
    lines = [
        f"### {task}",
        "",
        "| algorithm | final reward | KL to the start | distinct-2 | seconds per run |",
        "|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        cells = []
        for key, fmt in (("final", ".3f"), ("kl", ".2f"), ("distinct_2", ".3f"), ("seconds", ".1f")):
            mean, half = interval([r[key] for r in runs])
            cells.append(f"{mean:{fmt}} ± {half:{fmt}}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: dict[str, dict[str, list[dict]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for ax, (task, by_name) in zip(axes[0], results.items()):
        for name, runs in by_name.items():
            curves = torch.tensor([r["curve"] for r in runs])
            mean = curves.mean(0)
            ax.plot(range(1, len(mean) + 1), mean, label=name)
        ax.set_title(f"{task}: batch mean reward, mean over {len(runs)} seeds")
        ax.set_xlabel("step (32 samples each)")
        ax.set_ylabel("reward")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("text", "tiny", "both"), default="text")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument(
        "--lr", type=float, default=1e-3, help="the shared learning rate (the tiny models need a large one)"
    )
    parser.add_argument("--only", nargs="*", default=None, help="run only these variants")
    parser.add_argument("--out", default="runs/bench-algorithms")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = {"text": text_run, "tiny": tiny_run}
    chosen = tasks if args.task == "both" else {args.task: tasks[args.task]}
    names = args.only or list(VARIANTS)
    results: dict[str, dict[str, list[dict]]] = {}
    for task, run in chosen.items():
        results[task] = {name: [] for name in names}
        for seed in range(args.seeds):
            for name in names:
                r = run(name, seed, args.steps, args.lr)
                results[task][name].append(r)
                print(
                    f"{task} {name} seed {seed}: final {r['final']:.3f}, KL {r['kl']:.2f}, {r['seconds']:.1f} s",
                    flush=True,
                )
        print(table(task, results[task]), flush=True)
    (out / "results.json").write_text(json.dumps(results))
    plot(results, out / "algorithms.png")
    print(f"Wrote {out / 'results.json'} and {out / 'algorithms.png'}")


if __name__ == "__main__":
    main()
