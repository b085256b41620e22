"""The on-disk layout of a promptrl run, and the only code that knows its file names.

A run directory holds:
    config.yaml          the config as given (tiny:<asset> names unresolved, so the dir can move)
    metrics.jsonl        one JSON row per step
    images/step_XXXXXX.png  batch grids (written aside, then renamed: readers never see half a PNG)
    checkpoint-XXXXXX/   model + tokenizer + promptrl.json + trainer_state.json/.safetensors
    sft/                 the supervised warm start
    model/               the final model (written aside, then swapped in)
    report.png, samples.md, before_after.png
    heldout.txt          the ideas held out of training (one per line)
    eval/                the start model against the final one on them: eval.json, eval.md, eval.png
    train.log            the command line's log: the libraries' messages and warnings

Trainer state is data: JSON for numbers, strings and structure, safetensors for tensors and
arrays. Nothing is unpickled, so a checkpoint from a stranger cannot run code. Paths recorded in
a run are relative to it (`run:sft`), so a run dir can be moved or zipped.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger("promptrl")

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
IMAGES_DIR = "images"
MODEL_DIR = "model"
SFT_DIR = "sft"
RUN_INFO_FILE = "promptrl.json"
HELDOUT_FILE = "heldout.txt"
EVAL_DIR = "eval"
REPORT_FILE = "report.png"
SAMPLES_FILE = "samples.md"
BEFORE_AFTER_FILE = "before_after.png"
LOG_FILE = "train.log"
"""The log `promptrl train` writes (the libraries' messages and warnings; see logs.py)."""
STATE_FILE = "trainer_state.json"
TENSORS_FILE = "trainer_state.safetensors"
LEGACY_STATE_FILE = "trainer_state.pt"
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
RUN_PREFIX = "run:"
"""Recorded paths inside the run dir are written `run:<relative path>`."""
RUN_MARKERS = (CONFIG_FILE, METRICS_FILE, MODEL_DIR)
CONFIG_KEYS_THAT_MAY_CHANGE = frozenset(
    {
        "steps",
        "save_every",
        "keep_checkpoints",
        "image_every",
        "eval_ideas",
        "trackers",
        "progress",
        "output_dir",
        # the judge samples under its own seeds: how and how often it runs leaves training alone
        "eval.every",
        "eval.samples",
        "eval.judges",
        "eval.bootstrap",
        "eval.seed",
    }
)
"""Keys a resumed run may change: they say how long to run and what to write, not how to train."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file."""


# --------------------------------------------------------------------------- paths


def inside(root: str | Path, path: str | Path) -> Path:
    """`path` resolved, if it lies inside `root`; else a ValueError (symlinks and `..` followed)."""
    root, resolved = Path(root).resolve(), Path(path).resolve()
    if resolved != root and root not in resolved.parents:
        raise ValueError(f"{path} resolves outside {root}; refusing to write there.")
    return resolved


def portable(path: str, run_dir: str | Path) -> str:
    """`path` as recorded in a run: `run:<relative>` when inside `run_dir`, else unchanged."""
    p, run = Path(path), Path(run_dir).resolve()
    if p.is_absolute() or p.exists():
        resolved = p.resolve()
        if resolved == run or run in resolved.parents:
            return RUN_PREFIX + resolved.relative_to(run).as_posix()
    return path


def resolve_recorded(value: str, run_dir: str | Path) -> str:
    """The inverse of `portable` for the run dir `run_dir` is in now."""
    if value.startswith(RUN_PREFIX):
        return str(Path(run_dir) / value[len(RUN_PREFIX) :])
    return value


def is_used(run_dir: str | Path) -> bool:
    """Whether `run_dir` already holds a run (a config, metrics, checkpoints or a final model)."""
    run = Path(run_dir)
    return any((run / name).exists() for name in RUN_MARKERS) or bool(checkpoints(run))


def prepare(run_dir: str | Path, resume: bool, overwrite: bool, write: bool = True) -> Path:
    """Create `run_dir`; refuse to start a new run over an old one unless told to replace it.
    Every process checks; only the one with `write` (the main process) deletes and creates."""
    run = Path(run_dir)
    if not resume and is_used(run) and not overwrite:
        raise ValueError(
            f"output_dir {run} already holds a run; pass --resume {run} to continue it, "
            "--overwrite to replace it, or choose another --output-dir."
        )
    if not write:
        return run
    if not resume and is_used(run):
        for name in (
            *RUN_MARKERS,
            SFT_DIR,
            IMAGES_DIR,
            REPORT_FILE,
            SAMPLES_FILE,
            BEFORE_AFTER_FILE,
        ):
            target = run / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        for ckpt in checkpoints(run):
            shutil.rmtree(ckpt)
    run.mkdir(parents=True, exist_ok=True)
    for stale in run.glob(".tmp-*"):  # left by a kill during a write
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    return run


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


def image_grids(run_dir: str | Path) -> list[Path]:
    """The finished batch grids of a run, oldest first."""
    return sorted(Path(run_dir).glob(f"{IMAGES_DIR}/step_*.png"))


# --------------------------------------------------------------------------- checkpoints


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / f"checkpoint-{step:06d}"


def checkpoints(run_dir: str | Path) -> list[Path]:
    """`checkpoint-*` dirs of a run, oldest first."""
    found = [p for p in Path(run_dir).glob("checkpoint-*") if CHECKPOINT_RE.match(p.name) and p.is_dir()]
    return sorted(found, key=lambda p: int(CHECKPOINT_RE.match(p.name).group(1)))


def is_checkpoint(path: str | Path) -> bool:
    path = Path(path)
    return (path / STATE_FILE).exists() or (path / LEGACY_STATE_FILE).exists()


def find_checkpoint(path: str | Path) -> Path:
    """`path` itself if it is a checkpoint, else the newest `checkpoint-*` inside it."""
    path = Path(path)
    if is_checkpoint(path):
        return path
    found = [p for p in checkpoints(path) if is_checkpoint(p)]
    if not found:
        raise FileNotFoundError(f"No checkpoint in {path}: expected {STATE_FILE} or checkpoint-* directories.")
    return found[-1]


def save_checkpoint(
    run_dir: str | Path, step: int, write_model: Callable[[Path], None], state: dict, keep: int
) -> Path:
    """Write `checkpoint-<step>` atomically (model files and trainer state), keep the newest `keep`."""
    if keep < 1:
        raise ValueError(f"keep_checkpoints must be at least 1, got {keep}.")

    def write(tmp: Path) -> None:
        write_model(tmp)
        save_state(state, tmp)

    final = write_dir_atomically(checkpoint_dir(run_dir, step), write)
    for old in checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: str | Path) -> tuple[Path, dict]:
    """(checkpoint dir, trainer state) of `path` (a checkpoint) or of the newest checkpoint of
    `path` (a run dir) that loads; a broken one is named in a warning and the previous one tried."""
    path = Path(path)
    if is_checkpoint(path):
        return path, read_checkpoint(path)
    candidates = checkpoints(path)
    if not candidates:
        raise FileNotFoundError(
            f"No checkpoint to resume in {path}: expected {STATE_FILE} or checkpoint-* directories."
        )
    errors = []
    for ckpt in reversed(candidates):
        try:
            return ckpt, read_checkpoint(ckpt)
        except CheckpointError as err:
            logger.warning("%s; falling back to the previous checkpoint.", err)
            errors.append(str(err))
    raise CheckpointError(f"No checkpoint in {path} could be loaded: {' | '.join(errors)}")


def read_checkpoint(ckpt: Path) -> dict:
    """The trainer state of one checkpoint, after checking every weights file in it reads."""
    if (ckpt / LEGACY_STATE_FILE).exists() and not (ckpt / STATE_FILE).exists():
        raise CheckpointError(
            f"{ckpt / LEGACY_STATE_FILE} is a pickle from an older promptrl; it is not loaded "
            "because unpickling can run code. Start a new run."
        )
    from safetensors import safe_open

    for weights in sorted(ckpt.glob("*.safetensors")):
        try:
            with safe_open(str(weights), framework="pt") as f:
                for key in f.keys():
                    f.get_tensor(key)
        except Exception as err:  # safetensors raises its own error types for every kind of damage
            raise CheckpointError(f"checkpoint file {weights} is unreadable ({type(err).__name__}: {err})") from None
    return load_state(ckpt)


def save_state(state: dict, directory: str | Path) -> None:
    """`state` (nested dicts, lists, tuples, numbers, strings, tensors, arrays, PIL images) as
    trainer_state.json plus trainer_state.safetensors."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    doc = _encode(state, tensors)
    save_file(tensors, str(Path(directory) / TENSORS_FILE))
    (Path(directory) / STATE_FILE).write_text(json.dumps(doc))


def load_state(directory: str | Path) -> dict:
    from safetensors.torch import load_file

    directory = Path(directory)
    try:
        tensors = load_file(str(directory / TENSORS_FILE))
        return _decode(json.loads((directory / STATE_FILE).read_text()), tensors)
    except Exception as err:
        raise CheckpointError(
            f"checkpoint file {directory / STATE_FILE} (or {TENSORS_FILE}) is unreadable ({type(err).__name__}: {err})"
        ) from None


def _encode(obj, tensors: dict):
    if isinstance(obj, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = obj.detach().cpu().clone().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        key = str(len(tensors))
        tensors[key] = torch.from_numpy(obj.astype(np.int64) if obj.dtype.kind in "ui" else obj.copy())
        return {"__ndarray__": key, "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if hasattr(obj, "mode") and hasattr(obj, "size") and hasattr(obj, "tobytes"):  # a PIL image
        key = str(len(tensors))
        tensors[key] = torch.from_numpy(np.asarray(obj.convert("RGB")).copy())
        return {"__image__": key}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(x, tensors) for x in obj]}
    if isinstance(obj, list):
        return [_encode(x, tensors) for x in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, tensors) for k, v in obj.items()}
        return {"__items__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"Cannot store a {type(obj).__name__} in a checkpoint (only data: numbers, text, tensors).")


def _decode(obj, tensors: dict):
    if isinstance(obj, list):
        return [_decode(x, tensors) for x in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__ndarray__" in obj:
        return tensors[obj["__ndarray__"]].numpy().astype(np.dtype(obj["dtype"]))
    if "__image__" in obj:
        from PIL import Image

        return Image.fromarray(tensors[obj["__image__"]].numpy())
    if "__tuple__" in obj:
        return tuple(_decode(x, tensors) for x in obj["__tuple__"])
    if "__items__" in obj:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


# --------------------------------------------------------------------------- resume checks


def config_changes(old: dict, new: dict, prefix: str = "") -> dict[str, tuple]:
    """`{dotted key: (old, new)}` for every value that differs between two config dicts."""
    out = {}
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out.update(config_changes(a, b, f"{prefix}{key}."))
        elif a != b:
            out[f"{prefix}{key}"] = (a, b)
    return out


def check_resume_config(run_dir: str | Path, new: dict) -> None:
    """Refuse to resume a run whose config.yaml differs from `new` in a key that changes training."""
    import yaml

    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        return
    old = yaml.safe_load(path.read_text()) or {}
    changed = {k: v for k, v in config_changes(old, new).items() if k not in CONFIG_KEYS_THAT_MAY_CHANGE}
    if changed:
        listed = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in ((k, *v) for k, v in changed.items()))
        raise ValueError(
            f"Cannot resume {run_dir} with a different config ({listed}). Only "
            f"{', '.join(sorted(CONFIG_KEYS_THAT_MAY_CHANGE))} may change on resume; "
            "start a new run (another --output-dir) to train differently."
        )
