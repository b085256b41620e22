"""Did tuning help? A paired comparison of two prompt generators on held-out ideas.

For every idea and sample slot both generators sample with the same seed and their prompts
are rendered from the same image noise, so the two images of a pair differ only by the
prompt. Every reward (and judge) scores every image; per reward the report gives both means
with bootstrap 95% intervals, the paired difference and the paired win rate (ties count half)
with theirs. Intervals come from a two-stage bootstrap (ideas, then samples within each drawn
idea): the samples of one idea are not independent, and ideas are what a user wants the result
to generalise to. Every random draw is seeded, so
the same evaluation twice gives the same numbers.

Prompt statistics show what the tuning did to the text: distinct-1/2 (a collapse onto the same
modifiers drives them down), mean length, the share cut at the text encoder's token limit and
the words the tuned generator adds most.
"""

from __future__ import annotations

import collections
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .generation import PromptGenerator
from .plots import image_grid
from .rendering import Renderer, idea_seed
from .rewards import RewardFn, WeightedSum, score

JUDGE_PREFIX = "judge/"
PREFERENCE_MODELS = ("pickscore", "hps")


def heldout_split(ideas: list[str], n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``(train, heldout)``: the ``n`` distinct ideas (at most a quarter of them) with the
    smallest seeded hashes are held out (none when that would be a single idea: nothing to judge
    by, one idea fewer to train on). A hash, not a shuffle, so an idea's side does not
    depend on the order of the list or on the other ideas."""
    distinct = list(dict.fromkeys(ideas))
    n = min(n, len(distinct) // 4)
    n = n if n >= 2 else 0
    ranked = sorted(
        distinct, key=lambda i: hashlib.sha256(f"heldout\x00{seed}\x00{i}".encode()).digest()
    )
    held = set(ranked[:n])
    return [i for i in ideas if i not in held], [i for i in distinct if i in held]


def weights_at_hand(name: str) -> bool:
    """Whether a model (local path, or hub repo already in the Hugging Face cache) can be
    loaded without downloading."""
    if name.startswith("hf://"):
        repo, filename = name[len("hf://") :].rsplit("/", 1)
    else:
        repo, filename = name, "config.json"
    if Path(name).exists():
        return True
    if name.startswith((".", "/", "~")) or repo.count("/") != 1:
        return False
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo, filename), str)


def resolve_judges(judges: list[dict] | None, rewards_config) -> list[dict]:
    """``judges`` as given, else a preference model the training reward does not use and whose
    weights are at hand, else the similarity reward."""
    if judges is not None:
        return [dict(j) for j in judges]
    trained = {t.get("type") for t in rewards_config.terms}
    at_hand = {"pickscore": rewards_config.pickscore_model, "hps": rewards_config.hps_weights}
    for kind in PREFERENCE_MODELS:
        if kind not in trained and weights_at_hand(at_hand[kind]):
            return [{"type": kind}]
    return [{"type": "similarity"}]


# --------------------------------------------------------------------------- sampling


@dataclass
class ModelSamples:
    """One generator's side of an evaluation; arrays are ``[ideas, samples]``."""

    prompts: list[list[str]]
    truncated: np.ndarray
    scores: dict[str, np.ndarray]
    images: list[Image.Image] = field(default_factory=list)
    """The first sample's image of each idea (for the grid)."""


def sampling_seed(seed: int, slot: int) -> int:
    """Torch seed of sample slot ``slot``: the same for both generators."""
    return seed * 100_003 + slot


def score_columns(
    reward: RewardFn, judges: WeightedSum | None, images, prompts, ideas
) -> dict[str, torch.Tensor]:
    """Named score columns: the reward's components (and ``total`` when it has several),
    then each judge as ``judge/<name>``."""
    total, components = score(reward, images, prompts, ideas)
    columns = dict(components)
    if len(components) > 1:
        columns = {"total": total, **columns}
    if judges is not None:
        columns.update(
            {JUDGE_PREFIX + k: v for k, v in score(judges, images, prompts, ideas)[1].items()}
        )
    return columns


@torch.no_grad()
def sample_and_score(
    generator: PromptGenerator,
    renderer: Renderer,
    reward: RewardFn,
    ideas: list[str],
    samples: int,
    seed: int = 0,
    judges: WeightedSum | None = None,
    bar: tqdm | None = None,
) -> ModelSamples:
    """``samples`` prompts per idea from ``generator``, rendered and scored.

    Slot ``k`` samples every idea in one batch from torch seed ``sampling_seed(seed, k)`` and
    renders idea ``i`` from image seed ``idea_seed(seed + k, i)``; the caller's RNG state is
    left as it was.
    """
    prompts, truncated, columns, images = [], [], collections.defaultdict(list), []
    for k in range(samples):
        with torch.random.fork_rng():
            torch.manual_seed(sampling_seed(seed, k))
            rollout = generator(ideas)
        seeds = [idea_seed(seed + k, i) for i in ideas]
        out = renderer(rollout.prompts, ideas=ideas, seeds=seeds, return_pil=k == 0)
        for name, values in score_columns(reward, judges, out.images, out.prompts, ideas).items():
            columns[name].append(values.numpy())
        prompts.append(rollout.prompts)
        truncated.append(out.truncated)
        images = images or out.pil
        if bar is not None:
            bar.update(1)
    by_idea = [list(p) for p in zip(*prompts)]
    return ModelSamples(
        by_idea, np.array(truncated).T, {k: np.stack(v, 1) for k, v in columns.items()}, images
    )


# --------------------------------------------------------------------------- statistics


def bootstrap_indices(
    n_ideas: int, n_samples: int, resamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Two-stage bootstrap draws from a seeded generator: ``[resamples, ideas]`` idea indices,
    then ``[resamples, ideas, samples]`` sample indices within each drawn idea. Both stages
    are resampled so that a few ideas (even one) still give an honest interval."""
    rng = np.random.default_rng(seed)
    ideas = rng.integers(0, n_ideas, size=(resamples, n_ideas))
    return ideas, rng.integers(0, n_samples, size=(resamples, n_ideas, n_samples))


def interval(values: np.ndarray, idx: tuple[np.ndarray, np.ndarray]) -> list[float]:
    """95% percentile bootstrap interval of the mean of ``values [ideas, samples]``."""
    ideas, samples = idx
    means = values[ideas[..., None], samples].mean(axis=(1, 2))
    return [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]


def paired_stats(base: np.ndarray, tuned: np.ndarray, idx: tuple[np.ndarray, np.ndarray]) -> dict:
    """Means, paired difference and paired win rate of two ``[ideas, samples]`` score arrays,
    each with its 95% interval; ``significant`` when the difference's interval excludes 0."""
    diff = tuned - base
    wins = (diff > 0) + 0.5 * (diff == 0)
    diff_ci = interval(diff, idx)
    return {
        "base": float(base.mean()),
        "base_ci": interval(base, idx),
        "tuned": float(tuned.mean()),
        "tuned_ci": interval(tuned, idx),
        "diff": float(diff.mean()),
        "diff_ci": diff_ci,
        "win_rate": float(wins.mean()),
        "win_rate_ci": interval(wins, idx),
        "significant": bool(diff_ci[0] > 0 or diff_ci[1] < 0),
    }


def words(prompt: str) -> list[str]:
    """Lower-case words of a prompt (punctuation dropped)."""
    return re.findall(r"[\w']+", prompt.lower())


def prompt_stats(prompts: list[str], truncated: np.ndarray) -> dict:
    """distinct-1/2 (distinct word uni/bigrams over all of them), mean words, share cut at the
    text encoder's token limit."""
    unigrams = [w for p in prompts for w in words(p)]
    bigrams = [b for p in prompts for ws in [words(p)] for b in zip(ws, ws[1:])]
    return {
        "distinct_1": len(set(unigrams)) / len(unigrams) if unigrams else 0.0,
        "distinct_2": len(set(bigrams)) / len(bigrams) if bigrams else 0.0,
        "mean_words": float(np.mean([len(words(p)) for p in prompts])),
        "truncated_share": float(np.mean(truncated)),
    }


def added_words(base: list[str], tuned: list[str], top: int = 10) -> list[list]:
    """The words the tuned prompts use more often than the base prompts: ``[[word, extra]]``."""
    extra = collections.Counter(w for p in tuned for w in words(p))
    extra.subtract(w for p in base for w in words(p))
    ranked = sorted(((w, n) for w, n in extra.items() if n > 0), key=lambda x: (-x[1], x[0]))
    return [[w, n] for w, n in ranked[:top]]


# --------------------------------------------------------------------------- the comparison


@dataclass
class EvalResult:
    """A paired comparison; ``to_dict`` is eval.json, ``markdown`` eval.md."""

    names: dict[str, str]
    """What was compared: ``{"base": ..., "tuned": ...}``."""
    ideas: list[str]
    samples: int
    seed: int
    rewards: dict[str, dict]
    """Per score column, ``paired_stats``."""
    prompts: dict
    """``base`` and ``tuned`` prompt statistics and the ``added_words``."""
    pairs: list[dict]
    """Every (idea, sample) with both prompts and all their scores."""
    grid: Image.Image | None = None

    def to_dict(self) -> dict:
        return {
            "base": self.names["base"],
            "tuned": self.names["tuned"],
            "ideas": self.ideas,
            "samples": self.samples,
            "seed": self.seed,
            "rewards": self.rewards,
            "prompts": self.prompts,
            "pairs": self.pairs,
        }

    def markdown(self) -> str:
        """The tables a person reads."""
        n = len(self.ideas)
        out = [
            f"# {self.names['tuned']} against {self.names['base']}",
            "",
            f"{n} ideas x {self.samples} samples, paired (same sampling and image seeds); "
            "[95% bootstrap interval: ideas, then samples within them]; * the difference's interval excludes 0.",
            "",
            "| score | base | tuned | tuned - base | tuned wins |",
            "|---|---|---|---|---|",
        ]
        for name, s in self.rewards.items():
            star = " *" if s["significant"] else ""
            out.append(
                f"| {name} | {_ci(s['base'], s['base_ci'])} | {_ci(s['tuned'], s['tuned_ci'])} | "
                f"{_ci(s['diff'], s['diff_ci'], sign=True)}{star} | "
                f"{s['win_rate']:.0%} [{s['win_rate_ci'][0]:.0%}, {s['win_rate_ci'][1]:.0%}] |"
            )
        b, t = self.prompts["base"], self.prompts["tuned"]
        out += ["", "| prompts | base | tuned |", "|---|---|---|"]
        for key, label in (
            ("distinct_1", "distinct-1"),
            ("distinct_2", "distinct-2"),
            ("mean_words", "mean words"),
            ("truncated_share", "cut at token limit"),
        ):
            out.append(f"| {label} | {b[key]:.3f} | {t[key]:.3f} |")
        added = ", ".join(f"{w} (+{k})" for w, k in self.prompts["added_words"]) or "none"
        out += [
            "",
            f"Most frequent added words: {added}",
            "",
            "| idea | base prompt | tuned prompt |",
            "|---|---|---|",
        ]
        for pair in self.pairs[:: self.samples]:
            out.append(
                f"| {_cell(pair['idea'])} | {_cell(pair['base_prompt'])} | {_cell(pair['tuned_prompt'])} |"
            )
        return "\n".join(out) + "\n"

    def summary(self) -> str:
        """A few lines for the terminal."""
        lines = [
            f"{self.names['tuned']} vs {self.names['base']} on {len(self.ideas)} ideas x {self.samples} samples:"
        ]
        for name, s in self.rewards.items():
            verdict = (
                "better"
                if s["significant"] and s["diff"] > 0
                else "worse"
                if s["significant"]
                else "no significant difference"
            )
            lines.append(
                f"  {name}: {s['base']:.4g} -> {s['tuned']:.4g} ({s['diff']:+.4g}, 95% CI "
                f"[{s['diff_ci'][0]:+.4g}, {s['diff_ci'][1]:+.4g}]; tuned wins {s['win_rate']:.0%}): {verdict}"
            )
        b, t = self.prompts["base"], self.prompts["tuned"]
        lines.append(
            f"  prompts: distinct-2 {b['distinct_2']:.2f} -> {t['distinct_2']:.2f}, "
            f"words {b['mean_words']:.1f} -> {t['mean_words']:.1f}, "
            f"cut {b['truncated_share']:.0%} -> {t['truncated_share']:.0%}"
        )
        return "\n".join(lines)

    def save(self, directory: str | Path) -> Path:
        """Write eval.json, eval.md and eval.png (the side-by-side grid) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "eval.json").write_text(json.dumps(self.to_dict(), indent=2))
        (directory / "eval.md").write_text(self.markdown())
        if self.grid is not None:
            self.grid.save(directory / "eval.png")
        return directory


def _ci(mean: float, ci: list[float], sign: bool = False) -> str:
    fmt = "+.4g" if sign else ".4g"
    return f"{mean:{fmt}} [{ci[0]:{fmt}}, {ci[1]:{fmt}}]"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or "(empty)"


def compare_samples(
    base: ModelSamples,
    tuned: ModelSamples,
    ideas: list[str],
    seed: int = 0,
    bootstrap: int = 2000,
    names: dict[str, str] | None = None,
) -> EvalResult:
    """Statistics, tables and grid of two generators' ``ModelSamples`` on the same ideas."""
    samples = base.truncated.shape[1]
    idx = bootstrap_indices(len(ideas), samples, bootstrap, seed)
    rewards = {
        name: paired_stats(base.scores[name], tuned.scores[name], idx) for name in base.scores
    }
    flat = {
        side: [p for row in s.prompts for p in row]
        for side, s in (("base", base), ("tuned", tuned))
    }
    prompts = {
        "base": prompt_stats(flat["base"], base.truncated),
        "tuned": prompt_stats(flat["tuned"], tuned.truncated),
        "added_words": added_words(flat["base"], flat["tuned"]),
    }
    pairs = [
        {
            "idea": idea,
            "sample": k,
            "image_seed": idea_seed(seed + k, idea),
            "base_prompt": base.prompts[i][k],
            "tuned_prompt": tuned.prompts[i][k],
            "base": {n: float(v[i, k]) for n, v in base.scores.items()},
            "tuned": {n: float(v[i, k]) for n, v in tuned.scores.items()},
        }
        for i, idea in enumerate(ideas)
        for k in range(samples)
    ]
    grid = None
    if base.images and tuned.images:
        first = next(iter(base.scores))
        pics = [im for pair in zip(base.images, tuned.images) for im in pair]
        caps = [
            f"{side} {s.scores[first][i, 0]:.3f} | {s.prompts[i][0]}"
            for i in range(len(ideas))
            for side, s in (("base", base), ("tuned", tuned))
        ]
        grid = image_grid(pics, caps, cols=2)
    names = names or {"base": "base", "tuned": "tuned"}
    return EvalResult(names, list(ideas), samples, seed, rewards, prompts, pairs, grid)


def compare(
    base: PromptGenerator,
    tuned: PromptGenerator,
    renderer: Renderer,
    reward: RewardFn,
    ideas: list[str],
    samples: int = 4,
    seed: int = 0,
    judges: WeightedSum | None = None,
    bootstrap: int = 2000,
    names: dict[str, str] | None = None,
    progress: bool = True,
) -> EvalResult:
    """Sample, render and score both generators on ``ideas``, then compare them (see module doc)."""
    if not ideas:
        raise ValueError("No ideas to evaluate on; pass at least one idea.")
    bar = tqdm(total=2 * samples, desc="eval", disable=not progress)
    sides = {
        side: sample_and_score(gen, renderer, reward, ideas, samples, seed, judges, bar)
        for side, gen in (("base", base), ("tuned", tuned))
    }
    bar.close()
    return compare_samples(sides["base"], sides["tuned"], ideas, seed, bootstrap, names)
