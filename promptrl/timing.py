"""Seconds per stage, for the `time/*` statistics every loop reports."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Stopwatch:
    """Times named stages: `with watch("time/render"): ...`; `watch.times` maps each name to its
    seconds (summed when a stage runs more than once). The time since the stopwatch was made
    is `watch.total()`."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._start = time.perf_counter()

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - start

    def total(self) -> float:
        return time.perf_counter() - self._start
