"""What every tab gets: the shared models, the training run, the limits, the config, and the
components that tabs share (filled in as each tab lays itself out)."""

from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr

from ..config import TrainConfig
from .limits import Limits
from .model_cache import ModelCache
from .rating import Rating
from .training import TrainingRun


@dataclass
class AppContext:
    config: TrainConfig
    """The operator's config (presets unresolved: the Train tab's base)."""
    models: ModelCache
    run: TrainingRun
    limits: Limits
    defaults: dict[str, float]
    """Each built-in reward type's weight in the config (the sliders' starting values)."""
    rating: Rating
    """The Rate tab's store and pair maker."""
    shared: dict[str, gr.components.Component] = field(default_factory=dict)
    """Components by name, for events that cross tabs (Generate fills Render's table)."""
