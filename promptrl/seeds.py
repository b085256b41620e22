"""Seeds: every random draw of a run derives its seed here from the run's seed, and the global
random state a checkpoint saves and a resume restores."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def derive_seed(seed: int, stream: str, *keys: int | str) -> int:
    """The seed of draw `keys` of the random `stream` of a run seeded `seed`, in [0, 2**63).

    A stable hash (the same in every process, run and Python version, unlike `hash()`), so no
    two streams share seeds by accident: `derive_seed(0, "ppo/minibatches", step)`.
    """
    text = "\x00".join(str(part) for part in (seed, stream, *keys))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def rng_state() -> dict:
    """Python's, numpy's and torch's (CPU and CUDA) global random state."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
