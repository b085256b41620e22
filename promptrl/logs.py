"""Where the command line's log records go: a quiet console and the run's log file.

The console shows what a person running a command wants to see: promptrl's own messages (what
is happening, the result, where it was written), its progress bars and every error. The
details (the libraries' info and warnings, deprecation warnings, open_clip's model-building
lines) go to the run's `train.log`, and to the console as well with `--verbose`. The libraries'
own loading and saving bars ("Loading weights", "Loading pipeline components...", "Writing
model shards") are off unless `--verbose`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from tqdm.auto import tqdm

logger = logging.getLogger("promptrl")

LIBRARIES = ("transformers", "diffusers")
"""Libraries that print through a handler of their own unless told to propagate to the root."""
NOISY = ("httpx", "urllib3", "matplotlib", "PIL", "filelock", "fsspec", "asyncio")
"""Loggers whose info is never a detail worth keeping."""
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _ours(record: logging.LogRecord) -> bool:
    return record.name == "promptrl" or record.name.startswith("promptrl.")


def is_main_process() -> bool:
    """False in the second and later processes of `accelerate launch` / `torchrun`."""
    return os.environ.get("RANK", "0") == "0"


class _Console(logging.StreamHandler):
    """Writes above the progress bars (`tqdm.write`), so a message never breaks a bar.

    promptrl's messages are printed as they are, warnings prefixed "warning:"; a library's
    record shows its level and logger. A library's warning reaches the console only while
    no log file holds it (`file_active`).
    """

    def __init__(self, ours_level: int, library_level: int):
        super().__init__(sys.stderr)
        self.ours_level, self.library_level = ours_level, library_level
        self.file_active = False

    def filter(self, record: logging.LogRecord) -> bool:
        if _ours(record):
            return record.levelno >= self.ours_level
        floor = max(self.library_level, logging.ERROR) if self.file_active else self.library_level
        return record.levelno >= floor

    def format(self, record: logging.LogRecord) -> str:
        if not _ours(record):
            return f"{record.levelname} {record.name}: {super().format(record)}"
        text = super().format(record)
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:
            self.handleError(record)


class _LogFile(logging.FileHandler):
    """The run's log file; counts the libraries' warnings it holds, so the console can say
    that there are some and where."""

    def __init__(self, path: Path, append: bool):
        super().__init__(path, mode="a" if append else "w", encoding="utf-8")
        self.setLevel(logging.DEBUG)
        self.setFormatter(logging.Formatter(FILE_FORMAT))
        self.library_warnings = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING and not _ours(record):
            self.library_warnings += 1
        super().emit(record)


_console: _Console | None = None


@contextlib.contextmanager
def configure(verbose: bool = False) -> Iterator[None]:
    """Route every log record and warning for one command, and restore the previous set-up
    afterwards (tests call the command line in-process, many times)."""
    global _console
    import diffusers.utils.logging as diffusers_logging
    import huggingface_hub.utils as hub_utils
    import transformers.utils.logging as transformers_logging

    root, ours = logging.getLogger(), logging.getLogger("promptrl")
    libraries = [logging.getLogger(name) for name in LIBRARIES]
    noisy = [logging.getLogger(name) for name in NOISY]
    saved = {
        "levels": [(lg, lg.level) for lg in (root, ours, *libraries, *noisy)],
        "libraries": [(lg, lg.handlers[:], lg.propagate) for lg in libraries],
        "bars": (
            transformers_logging.is_progress_bar_enabled(),
            diffusers_logging.is_progress_bar_enabled(),
            hub_utils.are_progress_bars_disabled(),
        ),
    }
    main = is_main_process()
    console = _Console(
        ours_level=logging.DEBUG if verbose else logging.INFO if main else logging.WARNING,
        library_level=logging.INFO if verbose else logging.WARNING,
    )
    root.addHandler(console)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    ours.setLevel(logging.DEBUG)
    for lg in noisy:
        lg.setLevel(logging.WARNING)
    for library in (transformers_logging, diffusers_logging):
        library.disable_default_handler()
        library.enable_propagation()
        library.set_verbosity(logging.INFO if verbose else logging.WARNING)
        if not verbose:
            library.disable_progress_bar()
    if not verbose:
        hub_utils.disable_progress_bars()
    logging.captureWarnings(True)
    _console = console
    try:
        yield
    finally:
        files = [h for h in root.handlers if isinstance(h, _LogFile)]
        for handler in files:
            if handler.library_warnings:
                n = handler.library_warnings
                logger.info(
                    "%d warning%s from the libraries %s in %s (`promptrl -v` prints them too).",
                    n,
                    "" if n == 1 else "s",
                    "is" if n == 1 else "are",
                    handler.baseFilename,
                )
        logging.captureWarnings(False)
        _console = None
        for handler in [console, *files]:
            root.removeHandler(handler)
            handler.close()
        for lg, level in saved["levels"]:
            lg.setLevel(level)
        for lg, handlers, propagate in saved["libraries"]:
            lg.handlers[:] = handlers
            lg.propagate = propagate
        transformers_bar, diffusers_bar, hub_bars_off = saved["bars"]
        if transformers_bar:
            transformers_logging.enable_progress_bar()
        if diffusers_bar:
            diffusers_logging.enable_progress_bar()
        if not hub_bars_off:
            hub_utils.enable_progress_bars()


def log_to_file(path: str | Path, append: bool = False) -> Path:
    """Also write every record (promptrl's debug lines, the libraries' info and warnings) to
    `path` until `configure` ends; from then on the libraries' warnings stay off the console."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger().addHandler(_LogFile(path, append))
    if _console is not None:
        _console.file_active = True
    logger.info("Details go to %s", path)
    return path


def log_run(run_dir: str | Path, resume: bool, overwrite: bool) -> Path | None:
    """`log_to_file(<run_dir>/train.log)` on the main process: appended to when resuming,
    started afresh for a new run. A run directory that training will refuse (already used,
    neither `resume` nor `overwrite`) is left untouched."""
    from .rundir import Run

    run = Run(run_dir)
    if not is_main_process() or (not resume and not overwrite and run.is_used()):
        return None
    return log_to_file(run.paths.log, append=resume)
