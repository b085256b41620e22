"""Where models run and in which precision: one rule for the renderer, the rewards and the app.

A leaf module (it imports nothing from promptrl), so every layer can use it.
"""

from __future__ import annotations

import torch

from .errors import UsageError

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`device` as a `torch.device`; None means CUDA when available, else CPU."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """`"auto"`/None: fp16 on CUDA, fp32 elsewhere; else `"fp16"`, `"bf16"`, `"fp32"`."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise UsageError(f"dtype must be 'auto', 'fp16', 'bf16' or 'fp32', got {dtype!r}")
    return DTYPES[dtype]
