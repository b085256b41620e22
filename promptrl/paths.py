"""Where promptrl keeps what it ships and what it builds: the bundled data, the cache of locally
built models, and atomic writes into that cache.

A leaf module (it imports nothing from promptrl), so every layer can use it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"
"""The bundled ideas, prompts and review openings."""


def cache_root() -> Path:
    """`$PROMPTRL_CACHE`, else `~/.cache/promptrl`."""
    return Path(os.environ.get("PROMPTRL_CACHE") or Path.home() / ".cache" / "promptrl")


def default_cache_dir() -> Path:
    """Where tiny models are cached: `$PROMPTRL_CACHE/tiny` or `~/.cache/promptrl/tiny`."""
    return cache_root() / "tiny"


def default_weights_cache() -> Path:
    """Where the stand-in hub keeps its real-size ViT-L-14 weights (0.9 GB) between sessions:
    `$PROMPTRL_STANDIN_WEIGHTS`, else `~/.cache/promptrl/standin-weights`. Not under
    `$PROMPTRL_CACHE`, which the tests point at a fresh directory every session."""
    env = os.environ.get("PROMPTRL_STANDIN_WEIGHTS")
    return Path(env) if env else Path.home() / ".cache" / "promptrl" / "standin-weights"


def build_atomically(path: str | Path, marker: str, build: Callable[[Path], None]) -> Path:
    """Run `build(tmp_dir)` and rename `tmp_dir` to `path` unless `path/marker` exists.

    When two processes race, the loser's rename fails and its copy is discarded: the
    winner's directory is complete either way.
    """
    path = Path(path)
    if (path / marker).exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        build(tmp)
        if path.exists() and not (path / marker).exists():
            shutil.rmtree(path)  # a directory without its marker is from an older, broken build
        try:
            tmp.rename(path)
        except OSError:
            if not (path / marker).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path
