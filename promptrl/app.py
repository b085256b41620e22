"""The Gradio app: generate prompts, render and score them, train with PPO, inspect the models.

`build_app(...)` returns a queued `gr.Blocks` (tests, the notebook: `build_app().launch(share=True)`);
`main()` is the command line behind `python app.py` and `promptrl app`.

Tabs and their API names (every event has one, for `gradio_client`):
- Generate: `/generate` ideas -> N prompts per idea from the fine-tuned and the starting model.
- Render & score: `/render` chosen rows -> seeded images with each reward component.
- Train: `/train_start`, `/train_stop`, `/train_poll` (status, reward/KL plots, samples; a
  `gr.Timer` polls it while a run is going), `/download` (zip of the newest checkpoint or model).
- Model: `/model_info` what is loaded, on which device.

Models load once (lazily, shared by every session) and run under one lock; training runs in a
background thread with its own models, one run at a time. Bad input and failing rewards come
back as a message in the UI (and a `gr.Warning`), never a stack trace.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import gradio as gr
import pandas as pd
import torch

from .config import TrainConfig, load_config
from .generation import PromptGenerator
from .presets import PRESETS, resolve_tiny
from .rendering import Renderer, idea_seed, resolve_device
from .rewards import RewardError, WeightedSum, build_reward, score, weighted_terms
from .trainer import RUN_INFO_FILE, PromptTrainer, find_checkpoint, load_ideas

logger = logging.getLogger("promptrl")

MAX_IDEAS = 16
"""Ideas per Generate request."""
MAX_IDEA_CHARS = 200
"""Characters per idea: ideas are short seeds, the model writes the prompt."""
MAX_PROMPTS_PER_IDEA = 8
"""Prompts sampled per idea and model."""
MAX_NEW_TOKENS = 128
"""Tokens per generated prompt (Stable Diffusion reads at most 77 anyway)."""
MAX_RENDER_ROWS = 16
"""Table rows rendered per request (two images each: fine-tuned and starting model)."""
MAX_PROMPT_CHARS = 1000
"""Characters per table cell sent to Render & score."""

REWARD_TYPES = ("aesthetic", "similarity", "penalty")
"""Built-in reward types that get a weight slider."""
TABLE_HEADERS = ["idea", "sample", "fine-tuned prompt", "starting-model prompt"]
TABLE_WIDTHS = ["18%", "8%", "37%", "37%"]


class UserError(ValueError):
    """Input the app refuses, with a message that says what to do instead."""


def friendly(n_outputs: int) -> Callable:
    """Wrap a UI handler with `n_outputs` outputs, the last a status Markdown: on failure, show the
    message there (and as a `gr.Warning`) and leave the other outputs as they are.

    Expected failures (bad input, a failing reward, a missing file) show their own message;
    anything else is logged with its traceback on the server and shown as one line.
    """

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def handler(*args):
            try:
                return fn(*args)
            except (ValueError, FileNotFoundError, TypeError) as err:
                message = str(err)
            except Exception as err:
                logger.exception("app handler %s failed", fn.__name__)
                message = f"Something went wrong ({type(err).__name__}: {err}). The app is still running."
            gr.Warning(message)
            if n_outputs == 1:
                return f"⚠️ {message}"
            return (*[gr.skip()] * (n_outputs - 1), f"⚠️ {message}")

        return handler

    return wrap


# --------------------------------------------------------------------------- input checks


def parse_ideas(text: str | None) -> list[str]:
    """Non-blank lines of `text`, within the app's limits."""
    ideas = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not ideas:
        raise UserError("Type at least one idea, one per line (e.g. 'a lighthouse in a storm').")
    if len(ideas) > MAX_IDEAS:
        raise UserError(f"{len(ideas)} ideas is too many: at most {MAX_IDEAS} per request.")
    for i, idea in enumerate(ideas, 1):
        if len(idea) > MAX_IDEA_CHARS:
            raise UserError(f"Idea {i} is {len(idea)} characters long; keep ideas under "
                            f"{MAX_IDEA_CHARS} characters: a short idea, the model writes the prompt.")
    return ideas


def number(value, name: str, low: float, high: float, integer: bool = False) -> float | int:
    """`value` as a number in [low, high], else a UserError naming the control."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number, got {value!r}.") from None
    if not low <= x <= high:
        raise UserError(f"{name} must be between {low:g} and {high:g}, got {x:g}.")
    if integer:
        if not x.is_integer():
            raise UserError(f"{name} must be a whole number, got {x:g}.")
        return int(x)
    return x


def parse_rows(text: str | None, n_rows: int) -> list[int]:
    """0-based row indexes from '1,3-4' (1-based, inclusive); blank means every row."""
    if not (text or "").strip():
        rows = list(range(n_rows))
    else:
        rows = []
        for part in text.replace(" ", "").split(","):
            match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
            if not match:
                raise UserError(f"Rows look like '1,3-4'; could not read {part!r}.")
            first, last = int(match.group(1)), int(match.group(2) or match.group(1))
            if not 1 <= first <= last <= n_rows:
                raise UserError(f"Row range {part} is outside the table's rows 1-{n_rows}.")
            rows.extend(r - 1 for r in range(first, last + 1) if r - 1 not in rows)
    if len(rows) > MAX_RENDER_ROWS:
        raise UserError(f"{len(rows)} rows is too many to render at once: pick at most "
                        f"{MAX_RENDER_ROWS} (e.g. '1-{MAX_RENDER_ROWS}').")
    return rows


def table_text(cell, what: str) -> str:
    """A table cell as text ('' for an empty one), refused past MAX_PROMPT_CHARS."""
    text = "" if cell is None or pd.isna(cell) else str(cell).strip()
    if len(text) > MAX_PROMPT_CHARS:
        raise UserError(f"{what} in the table is {len(text)} characters long; keep it under "
                        f"{MAX_PROMPT_CHARS} (Stable Diffusion reads 77 tokens at most).")
    return text


def reward_weights(aesthetic, similarity, penalty) -> dict[str, float]:
    values = (aesthetic, similarity, penalty)
    return {kind: number(v, f"The {kind} weight", -5, 5) for kind, v in zip(REWARD_TYPES, values)}


# --------------------------------------------------------------------------- models


def find_run(model_dir: str | Path) -> tuple[Path, Path | None]:
    """(policy directory, run directory or None) for a model dir, a checkpoint or a run dir."""
    path = Path(model_dir)
    if not path.exists():
        raise FileNotFoundError(f"Model directory {path} does not exist.")
    if (path / "config.yaml").exists():  # a run: serve its final model, else its newest checkpoint
        final = path / "model"
        if (final / "config.json").exists():
            return final, path
        try:
            return find_checkpoint(path), path
        except FileNotFoundError:
            raise FileNotFoundError(f"Run directory {path} holds no final model (model/) and no "
                                    "checkpoint-* yet: nothing to serve.") from None
    if (path.parent / "config.yaml").exists():  # run/model or run/checkpoint-N
        return path, path.parent
    return path, None


def find_start_model(policy_dir: Path, run_dir: Path | None) -> tuple[str, str]:
    """(path or hub name, how it was found) of the model a promptrl run started from."""
    info = policy_dir / RUN_INFO_FILE
    if info.exists():
        start, how = json.loads(info.read_text())["start_model"], f"recorded in {info.name}"
    elif run_dir is None:
        return str(policy_dir), "no promptrl run found: the served model is its own reference"
    else:
        config = load_config(None, str(run_dir / "config.yaml"))
        start, how = config.policy.model, "the run's config.yaml"
        if config.sft.enabled:
            start, how = str(run_dir / "sft"), "the run's supervised warm start"
    if start.startswith("tiny:"):
        from .tiny import tiny_assets

        start = tiny_assets()[start.split(":", 1)[1]]
    return start, how


def n_params(model: torch.nn.Module) -> str:
    n = sum(p.numel() for p in model.parameters())
    return f"{n / 1e6:.1f}M" if n >= 1e5 else f"{n / 1e3:.0f}k"


class Models:
    """The app's generators, renderer and rewards: loaded once, shared, used under `lock`."""

    def __init__(self, config: TrainConfig, policy_dir: str, start_dir: str, start_note: str,
                 device: str | None = None, extra_rewards: dict | None = None):
        self.config = resolve_tiny(config)
        self.policy_dir, self.start_dir, self.start_note = str(policy_dir), str(start_dir), start_note
        self.device = resolve_device(device or self.config.render.device)
        self.extra_rewards = dict(extra_rewards or {})
        self.lock = threading.RLock()
        self._generators: tuple[PromptGenerator, PromptGenerator] | None = None
        self._renderer: Renderer | None = None
        self._rewards: dict[str, tuple[str, float, Callable]] | None = None

    @property
    def same_model(self) -> bool:
        a, b = Path(self.policy_dir), Path(self.start_dir)
        return a == b or (a.exists() and b.exists() and a.resolve() == b.resolve())

    def _generator(self, path: str) -> PromptGenerator:
        from transformers import AutoTokenizer

        from .models import ValueHeadModel

        model = ValueHeadModel.from_pretrained(path).to(self.device).eval()
        tokenizer = AutoTokenizer.from_pretrained(self.config.policy.tokenizer or path)
        return PromptGenerator(model, tokenizer, self.config.generation)

    def generators(self) -> tuple[PromptGenerator, PromptGenerator]:
        """(fine-tuned, starting model); one object twice when they are the same model."""
        with self.lock:
            if self._generators is None:
                tuned = self._generator(self.policy_dir)
                start = tuned if self.same_model else self._generator(self.start_dir)
                self._generators = (tuned, start)
            return self._generators

    def renderer(self) -> Renderer:
        with self.lock:
            if self._renderer is None:
                self._renderer = Renderer(dataclasses.replace(self.config.render, device=str(self.device)))
            return self._renderer

    def rewards(self) -> dict[str, tuple[str, float, Callable]]:
        """name -> (type, the config's weight, reward fn). Every built-in type is built (weight 0
        where the config lacks it) so that its slider can switch it on."""
        with self.lock:
            if self._rewards is None:
                r = self.config.rewards
                specs = weighted_terms(r.terms, dict.fromkeys(REWARD_TYPES, 1.0))
                built = build_reward(specs, device=self.renderer().device, clip_model_name=r.clip_model,
                                     clip_pretrained=r.clip_pretrained, aesthetic_weights=r.aesthetic_weights)
                configured = {s.get("name", s["type"]): float(s.get("weight", 1.0)) for s in r.terms}
                self._rewards = {name: (spec["type"], configured.get(name, 0.0), built.terms[name][1])
                                 for name, spec in zip(built.terms, specs)}
                for name, (weight, fn) in self.extra_rewards.items():
                    self._rewards[name] = ("custom", float(weight), fn)
            return self._rewards

    def default_weights(self) -> dict[str, float]:
        """The config's weight of each built-in reward type (0 where the config has none)."""
        weights = {kind: 0.0 for kind in REWARD_TYPES}
        for spec in self.config.rewards.terms:
            if spec.get("type") in weights:
                weights[spec["type"]] = float(spec.get("weight", 1.0))
        return weights

    def reward(self, weights: dict[str, float]) -> WeightedSum:
        """The reward mix for these built-in weights (extra rewards keep their own)."""
        terms = {name: (weights.get(kind, w), fn) for name, (kind, w, fn) in self.rewards().items()}
        terms = {name: t for name, t in terms.items() if t[0] != 0}
        if not terms:
            raise UserError("Every reward weight is zero: give at least one reward a non-zero weight.")
        return WeightedSum(terms)

    def load(self) -> None:
        self.generators()
        self.rewards()

    def generate(self, ideas: list[str], seed: int, **overrides) -> tuple[list[str], list[str]]:
        """Prompts for `ideas` from both models, each sampled from the same seed."""
        tuned, start = self.generators()
        prompts = []
        with self.lock:
            for gen in (tuned, start):
                with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                    torch.manual_seed(seed)
                    prompts.append(gen(ideas, **overrides).prompts)
        return prompts[0], prompts[1]

    def describe(self) -> str:
        """Markdown: what is loaded, where."""
        tuned, start = self.generators()
        renderer, rewards = self.renderer(), self.rewards()
        pipe = renderer.pipeline
        rc = self.config.render
        lm = tuned.model.pretrained_model
        lines = [
            "### Prompt generator",
            f"- **Fine-tuned:** `{self.policy_dir}` ({type(lm).__name__}, {n_params(tuned.model)} "
            f"parameters + value head) on `{self.device}`",
            f"- **Starting model (reference):** `{self.start_dir}` ({self.start_note})"
            + ("" if self.same_model else f", {n_params(start.model)} parameters on `{self.device}`"),
            f"- **Template:** `{self.config.generation.template!r}`",
            "### Diffusion pipeline",
            f"- `{rc.pipeline}` ({type(pipe).__name__}) on `{renderer.device}`, {pipe.dtype}",
            f"- {rc.num_inference_steps} steps, guidance {rc.guidance_scale}, {rc.width}x{rc.height}, "
            f"prompts cut to {renderer.max_prompt_tokens} tokens",
            "### Scorers",
        ]
        for name, (kind, weight, fn) in rewards.items():
            clip = getattr(getattr(fn, "clip", None), "model_name", None)
            where = f" on CLIP `{clip}` ({fn.clip.device})" if clip else ""
            what = getattr(fn, "__qualname__", None) or type(fn).__name__
            lines.append(f"- **{name}** ({kind}, default weight {weight:g}): `{what}`{where}")
        lines += [
            "### Limits",
            f"- {MAX_IDEAS} ideas of at most {MAX_IDEA_CHARS} characters, {MAX_PROMPTS_PER_IDEA} prompts "
            f"per idea, {MAX_NEW_TOKENS} new tokens, {MAX_RENDER_ROWS} rows rendered per request",
            f"- torch {torch.__version__}, gradio {gr.__version__}, CUDA "
            f"{'available' if torch.cuda.is_available() else 'not available'}",
        ]
        return "\n".join(lines)


# --------------------------------------------------------------------------- training


class TrainingRun:
    """At most one PPO run at a time, in a background thread; the UI polls its state."""

    def __init__(self, runs_dir: str | Path, extra_rewards: dict | None = None):
        self.runs_dir = Path(runs_dir)
        self.extra_rewards = dict(extra_rewards or {})
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.phase = "idle"
        self.message = ""
        self.total = 0
        self.history: list[dict] = []
        self.output_dir: Path | None = None
        self.trainer: PromptTrainer | None = None
        self.download_dir = Path(tempfile.mkdtemp(prefix="promptrl-app-"))

    @property
    def active(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, config: TrainConfig, ideas: str | None) -> str:
        with self._lock:
            if self.active:
                raise UserError("A training run is already going (one at a time): stop it first.")
            name = f"{config.preset or 'custom'}-{time.strftime('%Y%m%d-%H%M%S')}"
            self.output_dir = self.runs_dir / name
            suffix = 1
            while self.output_dir.exists():
                suffix += 1
                self.output_dir = self.runs_dir / f"{name}-{suffix}"
            config = dataclasses.replace(config, output_dir=str(self.output_dir), progress=False)
            self.phase, self.message, self.total = "starting", "loading models", config.steps
            self.history, self.trainer = [], None
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, args=(config, ideas), daemon=True,
                                            name="promptrl-train")
            self._thread.start()
        return f"Started a run of {config.steps} steps in `{self.output_dir}`."

    def stop(self) -> str:
        if not self.active:
            return "No run is going."
        self._stop.set()
        self.phase = "stopping"
        return "Stopping after the current step (a checkpoint and the final model are still written)."

    def _run(self, config: TrainConfig, ideas: str | None) -> None:
        try:
            reward = None
            if self.extra_rewards:
                resolved = resolve_tiny(config)
                built = build_reward(resolved.rewards.terms, device=resolve_device(None),
                                     clip_model_name=resolved.rewards.clip_model,
                                     clip_pretrained=resolved.rewards.clip_pretrained,
                                     aesthetic_weights=resolved.rewards.aesthetic_weights)
                reward = WeightedSum({**built.terms, **self.extra_rewards})
            trainer = PromptTrainer(config, reward=reward, ideas=ideas)
            self.trainer = trainer
            self.message = "supervised warm start" if config.sft.enabled else "loading the policy"
            trainer.setup()
            self.message = "sampling and scoring the starting model"
            trainer.before = trainer.evaluate()
            if self._stop.is_set():
                self.phase = "stopped"
                return
            if self.phase == "starting":
                self.phase = "running"
            trainer.train(callback=self.history.append, should_stop=self._stop.is_set)
            self.phase = "stopped" if trainer.step < config.steps else "finished"
        except Exception as err:
            logger.exception("Training run failed")
            self.phase = "failed"
            self.message = str(err) if isinstance(err, (ValueError, FileNotFoundError)) else f"{type(err).__name__}: {err}"

    def status(self) -> str:
        done = len(self.history)
        last = self.history[-1] if self.history else {}
        progress = (f" (reward {last['reward/total/mean']:.3f}, KL {last.get('objective/kl', float('nan')):.3f})"
                    if last else "")
        where = f" in `{self.output_dir}`" if self.output_dir else ""
        text = {
            "idle": "idle",
            "starting": f"starting: {self.message}…",
            "running": (f"running step {done + 1} of {self.total}{progress}" if done < self.total else
                        f"finishing: all {self.total} steps done{progress}; scoring the final model"),
            "stopping": f"stopping after step {done + 1} of {self.total}{progress}",
            "finished": f"finished: {done} of {self.total} steps{progress}; final model{where}",
            "stopped": (f"stopped after {done} of {self.total} steps{progress}; checkpoint and model{where}"
                        if done else "stopped before the first step"),
            "failed": f"failed: {self.message}",
        }[self.phase]
        return f"**Training:** {text}"

    def plot_frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Long-format (step, value, series) frames: reward components, KL and its coefficient."""
        rewards, kl = [], []
        for row in list(self.history):
            for key, value in row.items():
                if key.startswith("reward/") and key.endswith("/mean"):
                    rewards.append((row["step"], value, key[len("reward/"):-len("/mean")]))
            for key, series in (("objective/kl", "KL"), ("objective/kl_coef", "KL coefficient")):
                if key in row:
                    kl.append((row["step"], row[key], series))
        columns = ["step", "value", "series"]
        return pd.DataFrame(rewards, columns=columns), pd.DataFrame(kl, columns=columns)

    def samples_key(self) -> tuple:
        grids = sorted(self.output_dir.glob("images/step_*.png")) if self.output_dir else []
        trainer = self.trainer
        return (self.output_dir, len(self.history), tuple(p.name for p in grids[-2:]),
                trainer is not None and trainer.before is not None, getattr(trainer, "after", None) is not None)

    def samples(self) -> list[tuple]:
        """Starting-model samples, the newest batch grids, then the final model's samples."""
        from PIL import Image

        trainer, items = self.trainer, []
        if trainer is not None and trainer.before is not None:
            items += [(s["image"], f"start · reward {s['reward']:.3f} · {s['prompt']}") for s in trainer.before]
        for path in (sorted(self.output_dir.glob("images/step_*.png"))[-2:] if self.output_dir else []):
            with Image.open(path) as img:
                items.append((img.copy(), f"batch at step {int(path.stem.split('_')[1])}"))
        for s in getattr(trainer, "after", None) or []:
            items.append((s["image"], f"final · reward {s['reward']:.3f} · {s['prompt']}"))
        return items

    def zip_latest(self) -> Path:
        """Zip of the final model (once written) or the newest checkpoint."""
        if self.output_dir is None:
            raise UserError("No training run yet: start one in this tab first.")
        final = self.output_dir / "model"
        if not self.active and (final / "config.json").exists():
            source = final
        else:
            try:
                source = find_checkpoint(self.output_dir)
            except FileNotFoundError:
                raise UserError("No checkpoint yet: one is written every `save_every` steps "
                                "and when the run ends.") from None
        base = self.download_dir / f"{self.output_dir.name}-{source.name}"
        try:
            return Path(shutil.make_archive(str(base), "zip", root_dir=source))
        except FileNotFoundError:  # a newer checkpoint replaced this one while zipping
            raise UserError("The checkpoint changed while it was being zipped; try again.") from None


def run_config(preset: str | None, config_file: str | None, overrides_text: str | None,
               steps, weights: dict[str, float]) -> TrainConfig:
    """The Train tab's config: preset, then the uploaded YAML, then `key=value` lines."""
    overrides = [line.strip() for line in (overrides_text or "").splitlines()
                 if line.strip() and not line.strip().startswith("#")]
    config = load_config(preset or None, config_file or None, overrides)
    if steps not in (None, "", 0):
        config = dataclasses.replace(config, steps=number(steps, "Steps", 1, 1_000_000, integer=True))
    terms = weighted_terms(config.rewards.terms, weights)
    return dataclasses.replace(config, rewards=dataclasses.replace(config.rewards, terms=terms))


# --------------------------------------------------------------------------- the UI


def _caption(prompt: str, total: float | None, components: dict[str, float]) -> str:
    """Scores first: a gallery thumbnail shows only the caption's first line."""
    if total is None:
        return f"(not scored)\n{prompt}"
    parts = " · ".join(f"{name} {value:.3f}" for name, value in components.items())
    return f"reward {total:.3f} | {parts}\n{prompt}"


def build_app(
    preset: str | None = "tiny",
    model_dir: str | None = None,
    base_dir: str | None = None,
    config_file: str | None = None,
    overrides: list[str] | None = None,
    device: str | None = None,
    runs_dir: str | Path = "runs/app",
    extra_rewards: dict[str, tuple[float, Callable]] | None = None,
    concurrency: int = 4,
    preload: bool = True,
) -> gr.Blocks:
    """The promptrl app as a queued `gr.Blocks`.

    Args:
        preset: named config (tiny, bloom-560m, gpt2) for the generator, pipeline and rewards.
        model_dir: fine-tuned generator: a `save_pretrained` dir, a checkpoint, or a promptrl run
            dir (then the run's config.yaml is applied on top of the preset, and its starting
            model becomes the reference). Default: the config's policy model.
        base_dir: the starting model to compare against (default: found from the run).
        config_file: YAML applied on top of the preset (and instead of the run's config).
        overrides: `key=value` config overrides, as `promptrl train --set`.
        device: where the app's models run (default: CUDA when available).
        runs_dir: where runs started from the Train tab write.
        extra_rewards: `name -> (weight, reward_fn)` added to the configured rewards, for
            Render & score and training (see `rewards.py` for the reward protocol).
        concurrency: requests served at once per event (`queue(default_concurrency_limit=)`).
        preload: load the models now rather than on the first request.
    """
    run_dir = None
    if model_dir is not None:
        policy_dir, run_dir = find_run(model_dir)
    if config_file is None and run_dir is not None:
        config_file = str(run_dir / "config.yaml")
    config = resolve_tiny(load_config(preset, config_file, overrides))
    if model_dir is None:
        policy_dir = Path(config.policy.model)
    if base_dir is not None:
        start_dir, start_note = base_dir, "--base"
    else:
        start_dir, start_note = find_start_model(policy_dir, run_dir)
    models = Models(config, str(policy_dir), start_dir, start_note, device, extra_rewards)
    if preload:
        models.load()
    run = TrainingRun(runs_dir, extra_rewards)
    defaults = models.default_weights()
    gen_cfg = config.generation

    @friendly(5)
    def generate(ideas_text, n, temperature, top_p, max_tokens, seed):
        ideas = parse_ideas(ideas_text)
        n = number(n, "Prompts per idea", 1, MAX_PROMPTS_PER_IDEA, integer=True)
        params = dict(
            temperature=number(temperature, "Temperature", 0.05, 2.0),
            top_p=number(top_p, "Top-p", 0.05, 1.0),
            max_new_tokens=number(max_tokens, "Max tokens", 1, MAX_NEW_TOKENS, integer=True),
        )
        seed = number(seed if seed is not None else 0, "Seed", 0, 2**31 - 1, integer=True)
        batch = [idea for idea in ideas for _ in range(n)]
        tuned, start = models.generate(batch, seed, **params)
        rows = [[idea, k % n + 1, t, s] for k, (idea, t, s) in enumerate(zip(batch, tuned, start))]
        table = pd.DataFrame(rows, columns=TABLE_HEADERS)
        note = " (the starting model is the served model itself)" if models.same_model else ""
        status = f"{len(rows)} prompt(s) from each model for {len(ideas)} idea(s), seed {seed}{note}."
        return table, "\n".join(tuned), "\n".join(start), table, status

    @friendly(4)
    def render(table, rows_text, seed, w_aesthetic, w_similarity, w_penalty):
        frame = table if isinstance(table, pd.DataFrame) else pd.DataFrame(table)
        frame = frame.replace(r"^\s*$", pd.NA, regex=True).dropna(how="all")  # the UI's blank rows
        if frame.empty or frame.shape[1] < 4:
            raise UserError("Nothing to render: generate prompts first (or fill the table: idea, "
                            "sample, fine-tuned prompt, starting-model prompt).")
        rows = parse_rows(rows_text, len(frame))
        seed = number(seed if seed is not None else 0, "Seed", 0, 2**31 - 1, integer=True)
        reward = models.reward(reward_weights(w_aesthetic, w_similarity, w_penalty))
        picked = frame.iloc[rows]
        ideas = [table_text(x, "An idea") for x in picked.iloc[:, 0]]
        prompts = [table_text(x, "A prompt") for column in (2, 3) for x in picked.iloc[:, column]]
        ideas2 = ideas + ideas
        seeds = [idea_seed(seed, idea) for idea in ideas2]  # same noise for both models' prompts
        message = f"Rendered {len(rows)} row(s) with seed {seed}; components are unweighted."
        with models.lock:
            out = models.renderer()(prompts, ideas=ideas2, seeds=seeds, return_pil=True)
            try:
                total, comps = score(reward, out.images, out.prompts, ideas2)
                totals = total.tolist()
                comps = {name: v.tolist() for name, v in comps.items()}
            except RewardError as err:
                totals, comps = [None] * len(prompts), {}
                message = f"⚠️ Scoring failed, images are shown unscored: {err}"
                gr.Warning(message)
        captions = [_caption(p, totals[i], {k: v[i] for k, v in comps.items()}) for i, p in enumerate(out.prompts)]
        gallery = list(zip(out.pil, captions))
        k = len(rows)
        records = []
        for i, p in enumerate(out.prompts):
            record = {"row": rows[i % k] + 1, "model": "fine-tuned" if i < k else "starting", "reward": totals[i]}
            record.update({name: v[i] for name, v in comps.items()})
            record.update({"seed": out.seeds[i], "idea": ideas2[i], "prompt": p})  # text last: the numbers stay in view
            records.append(record)
        if any(out.truncated):
            message += f" {sum(out.truncated)} prompt(s) were cut to the text encoder's token limit."
        return gallery[:k], gallery[k:], pd.DataFrame(records), message

    @friendly(2)
    def train_start(preset_name, config_path, ideas_path, steps, w_aesthetic, w_similarity, w_penalty, overrides_text):
        config = run_config(preset_name, config_path, overrides_text, steps,
                            reward_weights(w_aesthetic, w_similarity, w_penalty))
        if ideas_path:
            load_ideas(ideas_path)  # refuse an empty or unreadable file now, not in the thread
        message = run.start(config, ideas_path or None)
        return gr.Timer(active=True), message

    @friendly(1)
    def train_stop():
        return run.stop()

    def train_poll(shown):
        key = run.samples_key()
        timer = gr.Timer(active=run.active)
        if key == shown:
            return run.status(), gr.skip(), gr.skip(), gr.skip(), timer, shown
        reward_frame, kl_frame = run.plot_frames()
        return run.status(), reward_frame, kl_frame, run.samples(), timer, key

    @friendly(2)
    def download():
        path = run.zip_latest()
        return str(path), f"Zipped `{path.name}`."

    @friendly(1)
    def model_info():
        return models.describe()

    with gr.Blocks(title="promptrl") as demo:
        gr.Markdown("# promptrl\nShort ideas in, Stable Diffusion prompts out: a prompt generator "
                    "fine-tuned with PPO on image rewards.")
        train_status = gr.Markdown(run.status(), elem_id="train-status")
        timer = gr.Timer(1.0, active=False)
        shown = gr.State(None)

        with gr.Tab("Generate", id="generate"):
            with gr.Row():
                ideas_box = gr.Textbox(label=f"Ideas (one per line, at most {MAX_IDEAS})", lines=5, scale=2,
                                       placeholder="a lighthouse in a storm\na cat astronaut", elem_id="ideas")
                with gr.Column(scale=1):
                    # Numbers, not sliders, where API callers may send anything: gradio rejects an
                    # out-of-range slider value itself, with a server-side traceback.
                    n_box = gr.Number(2, label=f"Prompts per idea (1-{MAX_PROMPTS_PER_IDEA})", precision=0)
                    temperature = gr.Slider(0.05, 2.0, value=gen_cfg.temperature, step=0.05, label="Temperature")
                    top_p = gr.Slider(0.05, 1.0, value=gen_cfg.top_p, step=0.05, label="Top-p")
                    max_tokens = gr.Number(min(gen_cfg.max_new_tokens, MAX_NEW_TOKENS), precision=0,
                                           label=f"Max tokens (1-{MAX_NEW_TOKENS})")
                    gen_seed = gr.Number(0, label="Seed", precision=0)
            gen_btn = gr.Button("Generate prompts", variant="primary", elem_id="generate-btn")
            gen_status = gr.Markdown(elem_id="generate-status")
            with gr.Row():
                tuned_text = gr.Textbox(label="Fine-tuned prompts", lines=6, buttons=["copy"],
                                        interactive=False, elem_id="tuned-prompts")
                start_text = gr.Textbox(label="Starting-model prompts", lines=6, buttons=["copy"],
                                        interactive=False, elem_id="start-prompts")
            gen_table = gr.Dataframe(headers=TABLE_HEADERS, label="Prompts", wrap=True, interactive=False,
                                     buttons=["copy"], column_widths=TABLE_WIDTHS)

        with gr.Tab("Render & score", id="render"):
            gr.Markdown("Generate fills this table; edit it freely. Each row renders twice with the "
                        "same seed (from the idea): fine-tuned prompt and starting-model prompt.")
            render_table = gr.Dataframe(headers=TABLE_HEADERS, label="Rows", wrap=True, interactive=True,
                                        show_row_numbers=True, column_widths=TABLE_WIDTHS)
            with gr.Row():
                rows_box = gr.Textbox(label=f"Rows to render, e.g. 1,3-4 (blank: all; at most {MAX_RENDER_ROWS})")
                render_seed = gr.Number(0, label="Image seed", precision=0)
            with gr.Row():
                render_weights = [gr.Slider(-5, 5, value=defaults[k], step=0.05, label=f"{k} weight")
                                  for k in REWARD_TYPES]
            render_btn = gr.Button("Render & score", variant="primary", elem_id="render-btn")
            render_status = gr.Markdown(elem_id="render-status")
            with gr.Row():
                tuned_gallery = gr.Gallery(label="Fine-tuned", columns=3, height="auto", format="png",
                                           elem_id="tuned-gallery")
                start_gallery = gr.Gallery(label="Starting model", columns=3, height="auto", format="png",
                                           elem_id="start-gallery")
            scores = gr.Dataframe(label="Scores", wrap=True, interactive=False, buttons=["copy"])

        with gr.Tab("Train", id="train"):
            with gr.Row():
                preset_box = gr.Dropdown(list(PRESETS), value=config.preset if config.preset in PRESETS else "tiny",
                                         label="Preset")
                config_upload = gr.File(label="Config YAML (optional, on top of the preset)",
                                        file_types=[".yaml", ".yml"], type="filepath")
                ideas_upload = gr.File(label="Ideas file (optional, one per line)", file_types=[".txt"],
                                       type="filepath")
            with gr.Row():
                steps_box = gr.Number(0, label="Steps (0: as the preset / YAML says)", precision=0)
                train_weights = [gr.Slider(-5, 5, value=defaults[k], step=0.05, label=f"{k} weight")
                                 for k in REWARD_TYPES]
            with gr.Accordion("Config overrides", open=False):
                overrides_box = gr.Textbox(label="key=value, one per line (as `promptrl train --set`)", lines=3,
                                           placeholder="ppo.lr=1e-4\nsamples_per_idea=2")
            with gr.Row():
                start_btn = gr.Button("Start training", variant="primary", elem_id="start-btn")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="stop-btn")
            train_message = gr.Markdown(elem_id="train-message")
            with gr.Row():
                reward_plot = gr.LinePlot(x="step", y="value", color="series", title="Reward (mean per step)",
                                          label="Reward")
                kl_plot = gr.LinePlot(x="step", y="value", color="series", title="KL to the starting model",
                                      label="KL")
            samples = gr.Gallery(label="Samples: starting model, newest batches, final model", columns=4,
                                 height="auto", object_fit="contain", format="png", elem_id="samples")
            with gr.Row(equal_height=True):
                download_btn = gr.Button("Zip the newest checkpoint", elem_id="download-btn")
                download_file = gr.File(label="Checkpoint", interactive=False, height=90)

        with gr.Tab("Model", id="model"):
            info = gr.Markdown(elem_id="model-info")
            refresh_btn = gr.Button("Refresh")

        gen_btn.click(generate, [ideas_box, n_box, temperature, top_p, max_tokens, gen_seed],
                      [gen_table, tuned_text, start_text, render_table, gen_status], api_name="generate")
        render_btn.click(render, [render_table, rows_box, render_seed, *render_weights],
                         [tuned_gallery, start_gallery, scores, render_status], api_name="render")
        start_btn.click(train_start, [preset_box, config_upload, ideas_upload, steps_box, *train_weights,
                                      overrides_box], [timer, train_message], api_name="train_start")
        stop_btn.click(train_stop, None, [train_message], api_name="train_stop")
        gr.on([demo.load, timer.tick], train_poll, shown,
              [train_status, reward_plot, kl_plot, samples, timer, shown], api_name="train_poll",
              show_progress="hidden")
        download_btn.click(download, None, [download_file, train_message], api_name="download")
        gr.on([demo.load, refresh_btn.click], model_info, None, [info], api_name="model_info")

    demo.models, demo.training = models, run  # for tests and notebooks
    return demo.queue(default_concurrency_limit=concurrency, max_size=64)


def main(argv: list[str] | None = None) -> None:
    """`python app.py [--preset tiny] [--model DIR] [--base DIR] [--share] [--port N] [--host H]`."""
    p = argparse.ArgumentParser(prog="app.py", description="Serve the promptrl Gradio app.")
    p.add_argument("--preset", default="tiny", help="named config: tiny (offline, CPU), bloom-560m, gpt2")
    p.add_argument("--model", default=None, help="fine-tuned generator: model dir, checkpoint or promptrl run dir")
    p.add_argument("--base", default=None, help="starting model to compare with (default: found from the run)")
    p.add_argument("--config", default=None, help="YAML config on top of the preset")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. --set render.num_inference_steps=4 (repeatable)")
    p.add_argument("--device", default=None, help="device of the app's models (default: cuda if available)")
    p.add_argument("--runs-dir", default="runs/app", help="where training runs started in the app write")
    p.add_argument("--concurrency", type=int, default=4, help="requests served at once per event")
    p.add_argument("--host", default="127.0.0.1", help="interface to serve on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=7860, help="port to serve on")
    p.add_argument("--share", action="store_true", help="public gradio.live link (e.g. from Colab)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        demo = build_app(args.preset, args.model, args.base, args.config, args.overrides, args.device,
                         args.runs_dir, concurrency=args.concurrency)
    except (ValueError, FileNotFoundError) as err:
        p.error(str(err))
    demo.launch(server_name=args.host, server_port=args.port, share=args.share)
