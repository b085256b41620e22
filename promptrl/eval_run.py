"""`promptrl eval`: what to compare and how, from a run directory's own records.

A run directory (or its `model/`, or a checkpoint) names its start model in `promptrl.json`
and its settings in `config.yaml`; the held-out ideas follow from those settings. Anything
else can be given explicitly: `--base`, `--ideas`, `--preset`/`--config`/`--set`. The settings
a model directory records (`model_config`) also give `promptrl generate` its template.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from .config import JUDGE_TYPES, TrainConfig, load_config
from .evaluate import EvalResult, compare, heldout_split, resolve_judges
from .generation import PromptGenerator
from .ideas import load_ideas
from .models import ValueHeadModel, check_model_source
from .rendering import Renderer
from .rewards import reward_from_config
from .rundir import CONFIG_FILE, EVAL_DIR, HELDOUT_FILE, MODEL_DIR, RUN_INFO_FILE, resolve_recorded
from .tiny import resolve_tiny

logger = logging.getLogger("promptrl")


@dataclass
class EvalTarget:
    """The two generators to compare and where the settings came from."""

    tuned: str
    base: str
    run_dir: Path | None
    """The run the tuned model belongs to (its config.yaml gives the defaults), if any."""


def locate(model: str, base: str | None = None) -> EvalTarget:
    """Resolve `--model` (a run directory, its `model/`, a checkpoint or any model) and `--base`
    (default: the start model the run recorded)."""
    path = Path(model)
    if (path / MODEL_DIR / RUN_INFO_FILE).exists():
        path = path / MODEL_DIR
    check_model_source(str(path), "--model")
    run_dir = run_dir_of(path)
    info = path / RUN_INFO_FILE
    if base is None:
        if not info.exists():
            raise ValueError(f"{model} records no start model ({RUN_INFO_FILE}); pass --base MODEL to compare against.")
        # recorded portably: `run:sft` (inside the run) or `tiny:policy` (a tiny stand-in)
        base = resolve_tiny(resolve_recorded(json.loads(info.read_text())["start_model"], run_dir or path.parent))
    check_model_source(base, "--base")
    return EvalTarget(str(path), str(base), run_dir)


def run_dir_of(model: Path) -> Path | None:
    """The run a model directory belongs to: itself or its parent, whichever holds a config.yaml."""
    return next((d for d in (model, model.parent) if (d / CONFIG_FILE).exists()), None)


def model_config(model: Path, overrides: list[str] | None = None) -> TrainConfig:
    """The settings `model` was trained with: its run's config.yaml, else the preset its
    promptrl.json names, else the default preset; then `overrides`."""
    run_dir = run_dir_of(model)
    if run_dir is not None:
        return load_config(None, str(run_dir / CONFIG_FILE), overrides)
    info = model / RUN_INFO_FILE
    preset = json.loads(info.read_text()).get("preset") if info.exists() else None
    return load_config(preset, None, overrides)


def eval_config(target: EvalTarget, preset: str | None, config_file: str | None, overrides: list[str]) -> TrainConfig:
    """The tuned model's own settings unless a preset or config file is named; then `--set`
    overrides."""
    if preset is None and config_file is None:
        return resolve_tiny(model_config(Path(target.tuned), overrides))
    return resolve_tiny(load_config(preset, config_file, overrides))


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
            raise ValueError(f"{flag}: unknown reward type(s) {', '.join(unknown)}; allowed: {', '.join(JUDGE_TYPES)}.")
    target = locate(model, base)
    config = eval_config(target, preset, config_file, overrides or [])
    e = config.eval if samples is None else dataclasses.replace(config.eval, samples=samples)  # checked there
    recorded = target.run_dir / HELDOUT_FILE if target.run_dir is not None else None
    if ideas is not None:
        idea_list = load_ideas(ideas)
    elif recorded is not None and recorded.exists():  # what the run really held out
        idea_list = [line for line in recorded.read_text(encoding="utf-8").splitlines() if line]
    else:
        idea_list = heldout_split(load_ideas(config.ideas), e.heldout, config.seed)[1]
        if target.run_dir is not None:
            logger.warning(
                "%s records no held-out ideas (%s): the run may have trained on the ideas evaluated now.",
                target.run_dir,
                HELDOUT_FILE,
            )
        if not idea_list:
            raise ValueError(
                f"the config holds no ideas out (eval.heldout={e.heldout}, {config.ideas!r}); pass --ideas FILE."
            )
    specs = [{"type": t} for t in rewards] if rewards else None  # None: the run's reward
    judge_specs = resolve_judges(e.judges, config.rewards) + [{"type": t} for t in judges or []]
    judge_specs = list({j.get("name", j["type"]): j for j in judge_specs}.values())
    renderer = Renderer(config.render)
    reward = reward_from_config(config.rewards, renderer.device, specs)
    judge = reward_from_config(config.rewards, renderer.device, judge_specs) if judge_specs else None

    def generator(name: str) -> PromptGenerator:
        from transformers import AutoTokenizer

        policy = ValueHeadModel.from_pretrained(name).to(renderer.device).eval()
        tokenizer = AutoTokenizer.from_pretrained(config.policy.tokenizer or name)
        return PromptGenerator(policy, tokenizer, config.generation)

    result = compare(
        generator(target.base),
        generator(target.tuned),
        renderer,
        reward,
        idea_list,
        e.samples,
        e.seed,
        judge,
        e.bootstrap,
        {"base": target.base, "tuned": target.tuned},
        progress,
    )
    default_out = target.run_dir / EVAL_DIR if target.run_dir is not None else Path(EVAL_DIR)
    return result, result.save(out or default_out)
