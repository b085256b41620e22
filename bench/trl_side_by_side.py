"""Seconds per PPO step: promptrl's `PPOTrainer.step` against trl 0.11.4's, both at defaults.

    make bench-trl          (builds .venv-trl with trl 0.11.4 on first use, then runs this)
    python bench/trl_side_by_side.py [--trl-python .venv-trl/bin/python] [--steps 11] [--warmup 2]

trl 0.11.4 is the last trl with `PPOTrainer.step(queries, responses, scores)`; it needs an older
transformers than promptrl, so it runs under its own interpreter. Each implementation runs in a
worker process (`ppo_worker.py`) on the shapes of `ppo_shapes.py` with one torch thread; the
workers step in alternating order, one at a time. Each round's process CPU times give a ratio,
and the median ratio is reported with its quartiles (CPU time, because wall time on a shared
2-core machine says more about the neighbours than about the code; ratios within a round,
because the machine's speed drifts between rounds). Without the trl interpreter it says so and
exits 0.

A third worker, `promptrl recorded`, is the step as `PromptTrainer` calls it: given the
policy's log-probs, values and entropies recorded while sampling, it skips its own no-grad pass
over the policy (`bench/rollout.py` measures what recording costs the sampling).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_TRL_PYTHON = os.environ.get("TRL_PYTHON", str(HERE.parent / ".venv-trl" / "bin" / "python"))


class Worker:
    def __init__(self, python: str, impl: str, case: str, threads: int):
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
        self.proc = subprocess.Popen(
            [python, str(HERE / "ppo_worker.py"), "--impl", impl, "--case", case, "--threads", str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"the {impl} worker ({python}) did not start; run it by hand to see why")

    def step(self) -> float:
        self.proc.stdin.write("step\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline().split()[0])

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def trl_available(python: str) -> bool:
    if not Path(python).exists():
        return False
    check = subprocess.run([python, "-c", "import trl; assert trl.__version__ == '0.11.4'"], capture_output=True)
    return check.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trl-python", default=DEFAULT_TRL_PYTHON, help="interpreter with trl 0.11.4 (env TRL_PYTHON)")
    parser.add_argument("--steps", type=int, default=11, help="timed steps per implementation and case")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--cases", nargs="+", default=["fixed", "varied"], choices=["fixed", "varied"])
    args = parser.parse_args()
    if not trl_available(args.trl_python):
        print(f"skipped: no trl 0.11.4 at {args.trl_python} (`make bench-trl` builds it)")
        return
    print(
        f"promptrl ({sys.executable}) vs trl 0.11.4 ({args.trl_python}), defaults, {args.threads} thread(s), "
        f"median CPU seconds of {args.steps} steps after {args.warmup} warm-up, alternating"
    )
    for case in args.cases:
        workers = {
            "promptrl": Worker(sys.executable, "promptrl", case, args.threads),
            "promptrl recorded": Worker(sys.executable, "promptrl-recorded", case, args.threads),
            "trl": Worker(args.trl_python, "trl", case, args.threads),
        }
        times = {name: [] for name in workers}
        for i in range(args.warmup + args.steps):
            order = list(workers) if i % 2 == 0 else list(reversed(workers))
            for name in order:
                seconds = workers[name].step()
                if i >= args.warmup:
                    times[name].append(seconds)
        for worker in workers.values():
            worker.close()
        medians = {name: statistics.median(t) for name, t in times.items()}
        theirs = medians["trl"]
        ratios = " | ".join(
            f"{name} {medians[name]:.3f} s/step, ratio {_paired(times[name], times['trl'])}"
            for name in ("promptrl", "promptrl recorded")
        )
        print(f"{case:>6}: trl 0.11.4 {theirs:.3f} s/step | {ratios}")


def _paired(ours: list[float], theirs: list[float]) -> str:
    """The median of the rounds' ratios, with their quartiles: each round's two steps ran back
    to back, so a ratio from one round is not skewed by the machine slowing down between rounds."""
    ratios = sorted(a / b for a, b in zip(ours, theirs))
    low, _, high = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
    return f"{statistics.median(ratios):.2f} (quartiles {low:.2f}-{high:.2f})"


if __name__ == "__main__":
    main()
