"""`promptrl eval`: what to compare and how, from a run's own records (`rundir.Run`).

A run directory (or its `model/`, or a checkpoint) records its start model, its settings and
the ideas it held out; anything else can be given explicitly: `--base`, `--ideas`,
`--preset`/`--config`/`--set`.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from ..config import JUDGE_TYPES, load_config
from ..errors import UsageError
from ..ideas import load_ideas
from ..paths import check_model_source
from ..rendering import Renderer
from ..rewards import reward_from_config
from ..rundir import Run
from ..standins.tiny import resolve_tiny
from .compare import compare, heldout_split, resolve_judges
from .stats import EvalResult

logger = logging.getLogger("promptrl")


def evaluate_model(
    model: str,
    base: str | None = None,
    ideas: str | None = None,
    samples: int | None = None,
    rewards: list[str] | None = None,
    judges: list[str] | None = None,
    out: str | None = None,
    preset: str | None = None,
    config_file: str | None = None,
    overrides: list[str] | None = None,
    progress: bool = True,
) -> tuple[EvalResult, Path]:
    """Compare `model` with `base` on held-out ideas (or `ideas`, a file); write eval.json,
    eval.md and eval.png to `out` (default: `<run>/eval`, else `./eval`). Returns the result
    and the output directory."""
    for flag, kinds in (("--rewards", rewards), ("--judges", judges)):
        unknown = sorted(set(kinds or ()) - set(JUDGE_TYPES))
        if unknown:
            raise UsageError(f"{flag}: unknown reward type(s) {', '.join(unknown)}; allowed: {', '.join(JUDGE_TYPES)}.")
    run = Run.locate(model)
    base = base or run.start_model
    if base is None:
        raise UsageError(f"{model} records no start model; pass --base MODEL to compare against.")
    check_model_source(base, "--base")
    # The tuned model's own settings unless a preset or config file is named; `--set` on top.
    given = run.load_config(overrides) if preset is None and config_file is None else None
    config = resolve_tiny(given or load_config(preset, config_file, overrides))
    e = config.eval if samples is None else dataclasses.replace(config.eval, samples=samples)  # checked there
    if ideas is not None:
        idea_list = load_ideas(ideas)
    elif run.heldout is not None:  # what the run really held out
        idea_list = run.heldout
    else:
        idea_list = heldout_split(load_ideas(config.ideas), e.heldout, config.seed)[1]
        if run.root is not None:
            logger.warning(
                "%s records no held-out ideas: the run may have trained on the ideas evaluated now.", run.root
            )
        if not idea_list:
            raise UsageError(
                f"the config holds no ideas out (eval.heldout={e.heldout}, {config.ideas!r}); pass --ideas FILE."
            )
    specs = [{"type": t} for t in rewards] if rewards else None  # None: the run's reward
    judge_specs = resolve_judges(e.judges, config.rewards) + [{"type": t} for t in judges or []]
    judge_specs = list({j.get("name", j["type"]): j for j in judge_specs}.values())
    renderer = Renderer(dataclasses.replace(config.render, vae="full"))  # no preview decoder: eval decodes in full
    reward = reward_from_config(config.rewards, renderer.device, specs)
    judge = reward_from_config(config.rewards, renderer.device, judge_specs) if judge_specs else None

    result = compare(
        run.load_generator(base, renderer.device, config),
        run.load_generator(None, renderer.device, config),
        renderer,
        reward,
        idea_list,
        e.samples,
        e.seed,
        judge,
        e.bootstrap,
        {"base": str(base), "tuned": str(run.model)},
        progress,
    )
    return result, result.save(out or run.eval_dir)
