"""Deprecation warnings that promptrl's own stand-in models would trigger stay fixed."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from promptrl.rendering import RenderConfig, Renderer
from promptrl.tiny import build_tiny_pipeline


def test_tiny_pipeline_builds_loads_and_renders_without_future_warnings(tmp_path):
    """diffusers warns (FutureWarning) about a scheduler whose `steps_offset` is not 1, and
    corrects it in the pipeline it builds: the tiny pipeline asks for 1 itself."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = build_tiny_pipeline(tmp_path / "pipeline")
        renderer = Renderer(RenderConfig(pipeline=path, height=64, width=64, guidance_scale=3.0))
        renderer(["a lighthouse in a storm"])
    future = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
    assert future == []
    assert json.loads((Path(path) / "scheduler" / "scheduler_config.json").read_text())["steps_offset"] == 1
