"""What the command line prints: what is happening, progress bars and the result; the details
(library logs and warnings, loading bars) go to the run's train.log, or to --verbose."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from promptrl.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICK_TRAIN = [
    "steps=2",
    "sft.epochs=1",
    "ppo.batch_size=4",
    "ppo.mini_batch_size=2",
    "ppo.forward_batch_size=4",
    "samples_per_idea=2",
    "generation.max_new_tokens=8",
    "eval_ideas=2",
    "eval.heldout=4",
    "eval.samples=1",
    "save_every=2",
    "image_every=2",
    "trackers=[]",
]
NOISE = (
    "INFO",
    "Loading weights",
    "Writing model shards",
    "Loading pipeline components",
    "WARNING: Location",
    "FutureWarning",
    "DeprecationWarning",
    "return forward_call",
)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "promptrl", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def lines(text: str) -> list[str]:
    """Console lines, with each progress-bar redraw (carriage return) its own line."""
    return [line for line in text.replace("\r", "\n").splitlines() if line.strip()]


def noise(text: str) -> list[str]:
    return [line for line in lines(text) if any(word in line for word in NOISE)]


@pytest.mark.slow
def test_train_prints_progress_and_result_and_logs_details(tmp_path):
    run = tmp_path / "run"
    sets = [arg for pair in QUICK_TRAIN for arg in ("--set", pair)]
    proc = cli("train", "--preset", "tiny", *sets, "--output-dir", str(run), cwd=tmp_path)
    console = proc.stdout + proc.stderr
    assert noise(console) == []
    assert f"Details go to {run / 'train.log'}" in console
    assert "sft: 100%" in proc.stderr and "ppo: 100%" in proc.stderr  # promptrl's own bars stay
    assert "Trained 2 steps; mean reward" in proc.stdout
    assert f"Model: {run / 'model'}" in proc.stdout

    log = (run / "train.log").read_text()
    assert "INFO promptrl: SFT: 21 steps" in log  # one epoch of the bundled corpus in batches of 16
    assert "INFO root: Loaded built-in promptrl-tiny-clip model config." in log  # open_clip, root logger
    assert "Comparing the start model with the tuned one on 4 held-out ideas" in log

    warned = [line for line in log.splitlines() if re.match(r"\S+ \S+ WARNING (?!promptrl:)", line)]
    if warned:  # e.g. a deprecation inside a library: counted on the console, kept in the log
        n = len(warned)
        assert (
            f"{n} warning{'' if n == 1 else 's'} from the libraries {'is' if n == 1 else 'are'} in {run / 'train.log'}"
            in console
        )
    else:
        assert "warnings from the libraries" not in console

    # The same run resumed for one more step appends to its log.
    cli("train", "--resume", str(run), "--set", "steps=3", cwd=tmp_path)
    again = (run / "train.log").read_text()
    assert again.startswith(log) and again.count("Details go to") == 2


def test_verbose_puts_the_details_on_the_console(gpt2_dir, tmp_path):
    quiet = cli("generate", "--model", gpt2_dir, "--max-new-tokens", "4", "a lighthouse", cwd=tmp_path)
    assert noise(quiet.stdout + quiet.stderr) == []
    assert quiet.stdout.startswith("a lighthouse -> ")
    loud = cli(
        "--verbose",
        "generate",
        "--model",
        gpt2_dir,
        "--max-new-tokens",
        "4",
        "a lighthouse",
        cwd=tmp_path,
    )
    assert any("Loading weights" in line for line in lines(loud.stderr))  # transformers' bar, back on


def test_a_refused_run_leaves_the_old_log_alone(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("steps: 1\n")  # a used run directory
    (run / "train.log").write_text("the old run's log\n")
    assert main(["train", "--preset", "tiny", "--output-dir", str(run)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (run / "train.log").read_text() == "the old run's log\n"


@pytest.mark.parametrize("propagating", [False, True])  # transformers propagates when CI=1 is set
def test_the_command_line_restores_the_logging_it_found(gpt2_dir, capsys, propagating):
    import transformers.utils.logging as transformers_logging

    root, library = logging.getLogger(), logging.getLogger("transformers")
    found = library.propagate
    library.propagate = propagating
    try:
        handlers, level = root.handlers[:], root.level
        library_handlers = library.handlers[:]
        bars = transformers_logging.is_progress_bar_enabled()
        assert main(["generate", "--model", gpt2_dir, "--max-new-tokens", "2", "an idea"]) == 0
        assert root.handlers == handlers and root.level == level
        assert transformers_logging.is_progress_bar_enabled() == bars
        assert library.propagate is propagating and library.handlers == library_handlers
        assert "an idea -> " in capsys.readouterr().out
    finally:
        library.propagate = found


def test_only_promptrl_errors_become_one_line_messages(monkeypatch, tmp_path, capsys):
    """A refusal is one line; a bug (any other exception) shows its traceback, not a tidy lie."""
    import promptrl.cli as cli_module
    from promptrl.errors import UsageError

    def refuses(args):
        raise UsageError("steps must be at least 1, got 0.")

    monkeypatch.setattr(cli_module, "cmd_generate", refuses)
    assert main(["generate", "an idea", "--model", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "promptrl generate: error: steps must be at least 1, got 0."

    for bug in (TypeError("unsupported operand"), ValueError("math domain error"), KeyError("step")):

        def breaks(args, bug=bug):
            raise bug

        monkeypatch.setattr(cli_module, "cmd_generate", breaks)
        with pytest.raises(type(bug)):
            main(["generate", "an idea", "--model", str(tmp_path)])


def test_a_missing_model_is_a_one_line_error(tmp_path, capsys):
    assert main(["generate", "an idea", "--model", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nowhere does not exist" in err, err
