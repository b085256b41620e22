"""`build_app`: the tabs assembled into one queued `gr.Blocks`.

Each tab is a module with `layout(ctx)` (its components, inside the Blocks) and `events(ctx)`
(its handlers, with an `api_name` each, for `gradio_client`). Layouts run first, so an event can
use another tab's components; to add a tab, write such a module and list it in `TABS`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gradio as gr

from ..config import load_config
from ..rundir import Run
from ..standins.tiny import resolve_tiny
from . import evaluate_tab, generate_tab, model_tab, rate_tab, render_tab, train_tab
from .context import AppContext
from .limits import Limits
from .model_cache import ModelCache
from .rating import Rating
from .training import TrainingRun

TABS = (generate_tab, render_tab, rate_tab, train_tab, evaluate_tab, model_tab)
"""The tabs, in the order they appear."""


def build_app(
    preset: str | None = None,
    model_dir: str | None = None,
    base_dir: str | None = None,
    config_file: str | None = None,
    overrides: list[str] | None = None,
    device: str | None = None,
    runs_dir: str | Path = "runs/app",
    extra_rewards: dict[str, tuple[float, Callable]] | None = None,
    concurrency: int = 4,
    preload: bool = True,
    limits: Limits | None = None,
    prefs_db: str | Path | None = None,
    shared_ratings: bool = False,
) -> gr.Blocks:
    """The promptrl app as a queued `gr.Blocks`; serve it with `serving.serve` (which enforces
    credentials beyond loopback), not `launch` directly.

    Args:
        preset: named config (`presets.PRESETS`: tiny, bloom-560m, ...) for the generator, pipeline and rewards
            (default: as the command line, `config.load_config`'s rule: tiny, unless a config
            file or a run's config.yaml is the base).
        model_dir: fine-tuned generator: a `save_pretrained` dir, a checkpoint, or a promptrl run
            dir (then the run's config.yaml is applied on top of the preset, and its starting
            model becomes the reference). Default: the config's policy model.
        base_dir: the starting model to compare against (default: found from the run).
        config_file: YAML applied on top of the preset (and instead of the run's config).
        overrides: `key=value` config overrides, as `promptrl train --set`.
        device: where the app's models run (default: CUDA when available).
        runs_dir: where runs started from the Train tab write (and nothing else the app writes
            goes anywhere else).
        extra_rewards: `name -> (weight, reward_fn)` added to the configured rewards, for
            Render & score and training (see `promptrl.rewards.protocol` for the reward protocol).
        concurrency: requests served at once per event (`queue(default_concurrency_limit=)`).
        preload: load the models now rather than on the first request.
        limits: server-side bounds on every request (default: `Limits()`).
        prefs_db: the Rate tab's store (default: `preferences.db` in `runs_dir`).
        shared_ratings: let every visitor see everyone's count of choices and fit a reward on
            everyone's choices (default: each visitor only their own).
    """
    limits = limits or Limits()
    run = Run.locate(model_dir) if model_dir is not None else None
    if run is not None and preset is None and config_file is None:
        given = run.load_config(overrides)  # the settings the served model was trained with
    else:
        if config_file is None and run is not None and run.root is not None:
            config_file = str(run.paths.config)  # on top of the preset named
        given = load_config(preset, config_file, overrides)
    config = resolve_tiny(given)
    policy = str(run.model) if run is not None else config.policy.model
    if base_dir is not None:
        start, start_note = base_dir, "--base"
    elif run is not None and run.start_model is not None:
        start, start_note = run.start_model, run.start_source
    else:
        start, start_note = policy, "no promptrl run records a start model: the served model is its own reference"
    step = run.step if run is not None else 0
    models = ModelCache(config, policy, start, start_note, device, extra_rewards, limits, step)
    if preload:
        models.load()
    ctx = AppContext(
        config=given,
        models=models,
        run=TrainingRun(runs_dir, extra_rewards),
        limits=limits,
        defaults=models.default_weights(),
        rating=Rating(models, limits, prefs_db, runs_dir, shared_ratings),
    )

    with gr.Blocks(title="promptrl") as demo:
        gr.Markdown(
            "# promptrl\nShort ideas in, Stable Diffusion prompts out: a prompt generator "
            "fine-tuned with PPO on image rewards."
        )
        ctx.shared.update(
            demo=demo,
            train_status=gr.Markdown(ctx.run.status(), elem_id="train-status"),
            timer=gr.Timer(1.0, active=False),
            shown=gr.State(None),
        )
        for tab in TABS:
            tab.layout(ctx)
        for tab in TABS:
            tab.events(ctx)

    demo.models, demo.training, demo.limits, demo.rating = (
        models,
        ctx.run,
        limits,
        ctx.rating,
    )  # for tests, notebooks, `serve`
    return demo.queue(default_concurrency_limit=concurrency, max_size=limits.queue_size)
