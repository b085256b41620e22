"""Tiny offline stand-ins for the real models, built locally from random init and cached.

Tests, the `tiny` preset and the benchmarks run without a model hub: `tiny_assets()` builds
(once, into `paths.default_cache_dir()`) a small policy, Stable Diffusion pipeline, open_clip
scorer with an aesthetic head, PickScore-style CLIP and HPS checkpoint (`builders.py`), and
returns where each lives.

A config names them `tiny:<asset>` (`tiny:policy`, `tiny:pipeline`, ...), so it holds no
machine's paths: `resolve_tiny` turns the names into local paths when a run starts, and
`unresolve_tiny` turns such paths back into names before a run records its config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from ..errors import UsageError
from ..paths import default_cache_dir
from ..rewards.embedders import TINY_CLIP_NAME
from .builders import (
    build_tiny_clip,
    build_tiny_hps,
    build_tiny_pickscore,
    build_tiny_pipeline,
    build_tiny_policy,
)

PREFIX = "tiny:"


def tiny_assets(cache_dir: str | Path | None = None) -> dict[str, str]:
    """Build (once) and return the paths of every tiny model.

    Keys: `policy`, `pipeline`, `clip_model_name`, `clip_pretrained`,
    `aesthetic_weights`, `pickscore`, `hps_weights`.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    clip = build_tiny_clip(root / "clip")
    return {
        "policy": build_tiny_policy(root / "policy"),
        "pipeline": build_tiny_pipeline(root / "pipeline"),
        "clip_model_name": clip["model_name"],
        "clip_pretrained": clip["pretrained"],
        "aesthetic_weights": clip["aesthetic_weights"],
        "pickscore": build_tiny_pickscore(root / "pickscore"),
        "hps_weights": build_tiny_hps(root / "hps"),
    }


def _map_strings(obj, fn: Callable[[str], str]):
    """`obj` (a dataclass, list, dict or string, nested) with `fn` applied to every string."""
    if dataclasses.is_dataclass(obj):
        fields = dataclasses.fields(obj)
        return dataclasses.replace(obj, **{f.name: _map_strings(getattr(obj, f.name), fn) for f in fields})
    if isinstance(obj, list):
        return [_map_strings(x, fn) for x in obj]
    if isinstance(obj, dict):
        return {k: _map_strings(v, fn) for k, v in obj.items()}
    return fn(obj) if isinstance(obj, str) else obj


def resolve_tiny(obj):
    """`obj` (a config, section or string) with every `tiny:<asset>` string replaced by the
    local path of that asset, built if needed."""
    assets: dict[str, str] = {}

    def resolve(value: str) -> str:
        if not value.startswith(PREFIX):
            return value
        if not assets:
            assets.update(tiny_assets())
        key = value[len(PREFIX) :]
        if key not in assets:
            raise UsageError(f"Unknown tiny asset '{key}'; known: {', '.join(assets)}.")
        return assets[key]

    return _map_strings(obj, resolve)


def unresolve_tiny(obj):
    """`obj` with every local path of a tiny asset in the default cache (and the tiny CLIP's
    model name) replaced by its `tiny:<asset>` name: the inverse of `resolve_tiny`."""
    cache, names = str(default_cache_dir()), {}

    def name(value: str) -> str:
        if value != TINY_CLIP_NAME and not value.startswith(cache):
            return value
        if not names:
            names.update({path: PREFIX + key for key, path in tiny_assets().items()})
        return names.get(value, value)

    return _map_strings(obj, name)
