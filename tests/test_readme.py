"""Every ```python and ```bash block of README.md runs, on the tiny preset, offline.

The blocks run in README order in one temporary directory (a block may use what an earlier
one wrote: `promptrl generate --model runs/tiny/model` the run of the line before it); each
python block in a fresh interpreter, each command of a bash block as its own process. What
changes, and only that:

- sizes, as in tests/test_real_path.py: every config gets `SMALL` (python blocks through
  `load_config`; `promptrl train`/`sft` lines through `--set`, with `steps=2`), and images
  are rendered at 64x64;
- hub names become the tiny stand-ins (`HUB_STANDINS`);
- lines in `SKIPPED` do not run, each for the reason given beside it.

A command the test does not know (neither `promptrl ...` nor skipped) fails the test, so a
new README line is run or skipped with a reason, never forgotten.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

SMALL = [
    "sft.epochs=1",
    "ppo.batch_size=4",
    "ppo.mini_batch_size=2",
    "ppo.forward_batch_size=4",
    "samples_per_idea=2",
    "generation.max_new_tokens=8",
    "eval_ideas=2",
    "eval.heldout=2",
    "eval.samples=1",
    "eval.bootstrap=50",
    "trackers=[]",
    "progress=false",
]
"""Sizes only: a couple of seconds per step on two CPU cores."""
CLI_SIZES = {
    "train": [arg for pair in [*SMALL, "steps=2"] for arg in ("--set", pair)],
    "sft": [arg for pair in SMALL for arg in ("--set", pair)],
    "render": ["--size", "64"],
    "score": ["--size", "64"],
}
HUB_STANDINS = {"stabilityai/sd-turbo": "tiny:pipeline", "bloom-560m": "tiny"}
"""Hub names in commands that run: the tiny preset's stand-ins load through the same code."""
SKIPPED = {
    "make demo": "make starts this test suite's machinery; the demo is the tiny preset's train, run here",
    "make test": "recursion: this test is part of make test",
    "promptrl train --preset bloom-560m": "the real models (hub, one GPU); "
    "tests/test_real_path.py trains this preset against the stand-in hub",
    "promptrl train --config my.yaml --resume runs/bloom-560m": "continues the bloom-560m run above; "
    "tests/test_trainer.py resumes runs exactly",
    "accelerate launch --multi_gpu --num_processes 4": "needs four GPUs",
    "accelerate launch --multi_gpu --num_machines 2": "needs two machines",
    "ACCELERATE_USE_CPU=true accelerate launch": "two processes: tests/test_distributed.py runs "
    "this command on the tiny preset",
}
FILES = {
    "my_prompts.txt": "a lighthouse in a storm\ta lighthouse in a storm, oil painting, dramatic light\n"
    "a quiet forest\ta quiet forest at dawn, mist, soft light, photograph\n",
}
"""Files the README's commands name, written before the blocks run."""
RUNNER = """
import runpy, sys
import promptrl.config

SMALL = {small!r}
load = promptrl.config.load_config

def load_config(preset=None, config_file=None, overrides=None):
    return load(preset, config_file, [*SMALL, *(overrides or [])])

promptrl.config.load_config = load_config
runpy.run_path(sys.argv[1], run_name="__main__")
"""


def blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block, in order."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)]


def commands(code: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, comments and blank lines out."""
    joined = code.replace("\\\n", " ")
    return [
        shlex.join(shlex.split(line, comments=True)) for line in joined.splitlines() if shlex.split(line, comments=True)
    ]


def skip_reason(command: str) -> str | None:
    return next((reason for prefix, reason in SKIPPED.items() if command.startswith(prefix)), None)


def argv_for(command: str) -> list[str]:
    """What runs for a README command: `python -m promptrl ...` with stand-ins and sizes."""
    words = shlex.split(command)
    if words[:3] == ["python", "-m", "promptrl"]:
        words = words[3:]
    elif words[:1] == ["promptrl"]:
        words = words[1:]
    else:
        raise AssertionError(f"README command {command!r} is neither run nor in SKIPPED with a reason")
    words = [HUB_STANDINS.get(w, w) for w in words]
    return [sys.executable, "-m", "promptrl", *words, *CLI_SIZES.get(words[0], [])]


def env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def run(argv: list[str], cwd: Path, what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, cwd=cwd, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"README {what} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def test_every_block_is_python_or_bash_and_every_command_is_run_or_skipped():
    found = blocks(README.read_text())
    assert {lang for lang, _ in found} <= {"python", "bash"}, "a README block in another language cannot be run"
    assert sum(lang == "python" for lang, _ in found) >= 4  # the API, the rewards, the trl 0.1 example
    for lang, code in found:
        for command in commands(code) if lang == "bash" else []:
            if skip_reason(command) is None:
                argv_for(command)  # raises for a command the test cannot run
    used = {
        prefix
        for lang, code in found
        if lang == "bash"
        for c in commands(code)
        for prefix in SKIPPED
        if c.startswith(prefix)
    }
    assert used == set(SKIPPED), f"SKIPPED names lines the README no longer has: {set(SKIPPED) - used}"


@pytest.mark.slow
def test_readme_blocks_run(tmp_path):
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "runner.py").write_text(RUNNER.format(small=SMALL))
    skipped = []
    for i, (lang, code) in enumerate(blocks(README.read_text())):
        if lang == "python":
            (tmp_path / f"block_{i}.py").write_text(code)
            run(
                [sys.executable, "runner.py", f"block_{i}.py"],
                tmp_path,
                f"python block {i}:\n{code}",
            )
            continue
        for command in commands(code):
            if (reason := skip_reason(command)) is not None:
                skipped.append(f"{command}: {reason}")
                continue
            proc = run(argv_for(command), tmp_path, f"command {command!r}")
            if command.startswith("promptrl train --preset tiny"):
                assert "Trained 2 steps" in proc.stdout
            if command.startswith("promptrl generate"):
                assert proc.stdout.count("a lighthouse in a storm -> ") == 3
    assert len(skipped) == len(SKIPPED)
    assert (tmp_path / "tiny-gpt2" / "config.json").exists()  # the trl 0.1 example's stand-in for 'gpt2'
    for run_dir in ("runs/api", "runs/my-reward", "runs/tiny"):
        assert (tmp_path / run_dir / "model").is_dir(), run_dir
    mixed = json.loads((tmp_path / "runs/my-reward/metrics.jsonl").read_text().splitlines()[-1])
    assert {"reward/colourfulness/mean", "reward/aesthetic/mean"} <= set(mixed)  # case 3: yours beside the built-ins
