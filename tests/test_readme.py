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
new README line is run or skipped with a reason, never forgotten. tests/test_docs.py runs the
documentation site's blocks with the same machinery (`run_blocks`).
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
    "pip install": "installs from the network; this test runs the checkout",
    "make demo": "make starts this test suite's machinery; the demo is the tiny preset's train, run here",
    "make test": "recursion: this test is part of make test",
    "promptrl app": "serves until stopped: tests/test_app.py drives the app, tests/test_attacks.py serves it",
    "promptrl train --preset bloom-560m": "the real models (hub, one GPU); "
    "tests/test_real_path.py trains this preset against the stand-in hub",
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

promptrl.config.load_config = promptrl.load_config = load_config
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


def skip_reason(command: str, skipped: dict[str, str] = SKIPPED) -> str | None:
    return next((reason for prefix, reason in skipped.items() if command.startswith(prefix)), None)


def argv_for(command: str) -> list[str]:
    """What runs for a command: `python -m promptrl ...` with stand-ins and sizes."""
    words = shlex.split(command)
    if words[:3] == ["python", "-m", "promptrl"]:
        words = words[3:]
    elif words[:1] == ["promptrl"]:
        words = words[1:]
    else:
        raise AssertionError(f"command {command!r} is neither run nor skipped with a reason")
    words = [HUB_STANDINS.get(w, w) for w in words]
    return [sys.executable, "-m", "promptrl", *words, *CLI_SIZES.get(words[0], [])]


def env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def run(argv: list[str], cwd: Path, what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, cwd=cwd, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{what} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def check_commands(found: list[tuple[str, str]], skipped: dict[str, str], where: str) -> None:
    """Every command of the bash blocks `found` is run or skipped, and every entry of
    `skipped` still names a line there."""
    for lang, code in found:
        for command in commands(code) if lang == "bash" else []:
            if skip_reason(command, skipped) is None:
                argv_for(command)  # raises for a command the test cannot run
    used = {
        prefix
        for lang, code in found
        if lang == "bash"
        for c in commands(code)
        for prefix in skipped
        if c.startswith(prefix)
    }
    assert used == set(skipped), f"the skipped lines name lines {where} no longer has: {set(skipped) - used}"


def run_blocks(found: list[tuple[str, str, str]], cwd: Path, skipped: dict[str, str]) -> dict[str, str]:
    """Run `(where, language, code)` blocks in order in `cwd`: python blocks through `RUNNER`,
    bash commands through `argv_for`, skipped lines not at all. Returns each command's stdout."""
    for name, text in FILES.items():
        (cwd / name).write_text(text)
    (cwd / "runner.py").write_text(RUNNER.format(small=SMALL))
    out = {}
    for i, (where, lang, code) in enumerate(found):
        if lang == "python":
            (cwd / f"block_{i}.py").write_text(code)
            run([sys.executable, "runner.py", f"block_{i}.py"], cwd, f"{where}: python block {i}:\n{code}")
            continue
        for command in commands(code) if lang == "bash" else []:
            if skip_reason(command, skipped) is None:
                out[command] = run(argv_for(command), cwd, f"{where}: command {command!r}").stdout
                if command.startswith("promptrl train --preset tiny"):
                    assert "Trained 2 steps" in out[command], command
    return out


def test_every_block_is_python_or_bash_and_every_command_is_run_or_skipped():
    found = blocks(README.read_text())
    assert {lang for lang, _ in found} <= {"python", "bash"}, "a README block in another language cannot be run"
    assert sum(lang == "python" for lang, _ in found) >= 3  # your own reward, the trl 0.1 example (two blocks)
    check_commands(found, SKIPPED, "the README")


@pytest.mark.slow
def test_readme_blocks_run(tmp_path):
    out = run_blocks([("README.md", lang, code) for lang, code in blocks(README.read_text())], tmp_path, SKIPPED)
    generate = next(text for command, text in out.items() if command.startswith("promptrl generate"))
    assert generate.count("a lighthouse in a storm -> ") == 3
    assert (tmp_path / "tiny-gpt2" / "config.json").exists()  # the trl 0.1 example's stand-in for 'gpt2'
    for run_dir in ("runs/my-reward", "runs/tiny"):
        assert (tmp_path / run_dir / "model").is_dir(), run_dir
    mixed = json.loads((tmp_path / "runs/my-reward/metrics.jsonl").read_text().splitlines()[-1])
    assert {"reward/colourfulness/mean", "reward/aesthetic/mean"} <= set(mixed)  # case 3: yours beside the built-ins
