"""The app's model cache: the served generator and its starting model, the renderer and the
rewards, loaded once, shared by every session, used under one lock. What to serve is found by
`rundir.Run.locate` (`build.py`).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path

import gradio as gr
import torch

from ..config import TrainConfig
from ..devices import resolve_device
from ..ppo.sampling import PromptGenerator
from ..rendering import Renderer
from ..rewards import ALL_WEIGHTS_ZERO, WeightedSum, reward_from_config, weighted_terms
from ..rundir import load_generator
from ..standins.tiny import resolve_tiny
from .limits import Limits, UserError

SLIDER_TYPES = ("aesthetic", "similarity", "penalty")
"""Built-in reward types that get a weight slider."""


def n_params(model: torch.nn.Module) -> str:
    n = sum(p.numel() for p in model.parameters())
    return f"{n / 1e6:.1f}M" if n >= 1e5 else f"{n / 1e3:.0f}k"


class ModelCache:
    """The app's generators, renderer and rewards: loaded once, shared, used under `lock`."""

    def __init__(
        self,
        config: TrainConfig,
        policy_dir: str,
        start_dir: str,
        start_note: str,
        device: str | None = None,
        extra_rewards: dict | None = None,
        limits: Limits | None = None,
        policy_step: int = 0,
    ):
        self.limits = limits or Limits()
        self.policy_step = policy_step
        """The served model's training step, as its run records it (the Rate tab stores it)."""
        self.config = resolve_tiny(config)
        self.policy_dir, self.start_dir, self.start_note = (
            str(policy_dir),
            str(start_dir),
            start_note,
        )
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
        return load_generator(path, self.config.generation, self.device, self.config.policy.tokenizer)

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
                # visitors see full decodes: a training-time preview decoder is not loaded here
                self._renderer = Renderer(dataclasses.replace(self.config.render, device=str(self.device), vae="full"))
            return self._renderer

    def rewards(self) -> dict[str, tuple[str, float, Callable]]:
        """name -> (type, the config's weight, reward fn). Every built-in type is built (weight 0
        where the config lacks it) so that its slider can switch it on."""
        with self.lock:
            if self._rewards is None:
                r = self.config.rewards
                specs = weighted_terms(r.terms, dict.fromkeys(SLIDER_TYPES, 1.0))
                built = reward_from_config(r, self.renderer().device, specs)
                configured = {s.get("name", s["type"]): float(s.get("weight", 1.0)) for s in r.terms}
                self._rewards = {
                    name: (spec["type"], configured.get(name, 0.0), built.terms[name][1])
                    for name, spec in zip(built.terms, specs)
                }
                for name, (weight, fn) in self.extra_rewards.items():
                    self._rewards[name] = ("custom", float(weight), fn)
            return self._rewards

    def default_weights(self) -> dict[str, float]:
        """The config's weight of each built-in reward type (0 where the config has none)."""
        weights = {kind: 0.0 for kind in SLIDER_TYPES}
        for spec in self.config.rewards.terms:
            if spec.get("type") in weights:
                weights[spec["type"]] = float(spec.get("weight", 1.0))
        return weights

    def reward(self, weights: dict[str, float]) -> WeightedSum:
        """The reward mix for these built-in weights (extra rewards keep their own)."""
        terms = {name: (weights.get(kind, w), fn) for name, (kind, w, fn) in self.rewards().items()}
        terms = {name: t for name, t in terms.items() if t[0] != 0}
        if not terms:
            raise UserError(ALL_WEIGHTS_ZERO)
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
        rc, lim = self.config.render, self.limits
        lm = tuned.model.pretrained_model
        lines = [
            "### Prompt generator",
            f"- **Fine-tuned:** `{Path(self.policy_dir).name}` ({type(lm).__name__}, {n_params(tuned.model)} "
            f"parameters + value head) on `{self.device}`",
            f"- **Starting model (reference):** `{Path(self.start_dir).name}` ({self.start_note})"
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
            f"- {lim.ideas} ideas of at most {lim.idea_chars} characters, {lim.prompts_per_idea} prompts "
            f"per idea, {lim.new_tokens} new tokens, {lim.render_rows} rows rendered per request",
            f"- training: one run at a time, at most {lim.train_steps} steps, batches of {lim.train_batch}, "
            f"uploads of {lim.upload_bytes:,} bytes",
            f"- torch {torch.__version__}, gradio {gr.__version__}, CUDA "
            f"{'available' if torch.cuda.is_available() else 'not available'}",
        ]
        return "\n".join(lines)
