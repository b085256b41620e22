"""Trainer state as data: JSON for numbers, strings and structure, safetensors for tensors,
arrays and images. Nothing is unpickled, so a checkpoint from a stranger cannot run code.

A leaf module: `rundir.py` names the files, this module writes and reads what is in them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .errors import UsageError


class CheckpointError(UsageError):
    """A checkpoint that cannot be loaded; the message names the file."""


def save_state(state: dict, json_path: str | Path, tensors_path: str | Path) -> None:
    """`state` (nested dicts, lists, tuples, numbers, strings, tensors, arrays, PIL images) as a
    JSON document plus a safetensors file holding every tensor it refers to."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    doc = _encode(state, tensors)
    save_file(tensors, str(tensors_path))
    Path(json_path).write_text(json.dumps(doc))


def load_state(json_path: str | Path, tensors_path: str | Path) -> dict:
    """What `save_state` wrote; a `CheckpointError` naming the file if either is unreadable."""
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(tensors_path))
        return _decode(json.loads(Path(json_path).read_text()), tensors)
    except Exception as err:
        raise CheckpointError(
            f"checkpoint file {json_path} (or {Path(tensors_path).name}) is unreadable ({type(err).__name__}: {err})"
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
