"""Where the stand-in hub puts a repository in a Hugging Face cache: a leaf module that
`hub.py` (the presets' repositories) and `families.py` (the image-model families) share."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

REVISION = hashlib.sha1(b"promptrl stand-in hub").hexdigest()
"""The commit every stand-in repository's `refs/main` points at."""


def repo_dir(hub_cache: Path, repo_id: str) -> Path:
    """The snapshot folder of `repo_id` in a hub cache (`models--org--name/snapshots/<rev>`)."""
    return Path(hub_cache) / ("models--" + repo_id.replace("/", "--")) / "snapshots" / REVISION


def install_repo(hub_cache: Path, repo_id: str, write: Callable[[Path], None]) -> None:
    """Write one repository: files into its snapshot, and `refs/main` naming that snapshot."""
    snapshot = repo_dir(hub_cache, repo_id)
    snapshot.mkdir(parents=True, exist_ok=True)
    write(snapshot)
    refs = snapshot.parent.parent / "refs"
    refs.mkdir(exist_ok=True)
    (refs / "main").write_text(REVISION)
