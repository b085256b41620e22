"""Where promptrl keeps what it ships and what it builds (the bundled data, the cache of locally
built models), and writes that a kill cannot leave half done: a directory or image is written
aside, then renamed into place, so a reader sees the old one or the new one, never part of one.

A leaf module (it imports nothing from promptrl), so every layer can use it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import NotFoundError, UsageError

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


def inside(root: str | Path, path: str | Path) -> Path:
    """`path` resolved, if it lies inside `root`; else a ValueError (symlinks and `..` followed)."""
    root, resolved = Path(root).resolve(), Path(path).resolve()
    if resolved != root and root not in resolved.parents:
        raise UsageError(f"{path} resolves outside {root}; refusing to write there.")
    return resolved


def write_dir_atomically(final: str | Path, write: Callable[[Path], None]) -> Path:
    """`write(tmp)` into a sibling temp dir, then swap it in for `final`: a kill at any moment
    leaves either the old `final` or the new one, never half of one."""
    final = Path(final)
    tmp = final.with_name(f".tmp-{final.name}")
    old = final.with_name(f".tmp-old-{final.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def save_image_atomically(image, path: str | Path) -> None:
    """Save a PIL image under a temp name and rename it, so pollers never read a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    image.save(tmp, format="PNG")
    os.replace(tmp, path)


def check_model_source(name_or_path: str | os.PathLike, what: str = "Model") -> None:
    """Fail early, with a clear message, on a local path that does not exist.

    Hub names ('org/name' or 'name') are left to transformers, which also finds them in the
    local cache when the hub is offline.
    """
    name = str(name_or_path)
    if Path(name).expanduser().exists():
        return
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name:
        raise NotFoundError(
            f"{what} '{name}' does not exist; pass a directory written by save_pretrained "
            "or a hub name such as 'bigscience/bloom-560m'."
        )
