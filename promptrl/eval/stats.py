"""The numbers of a paired comparison and the report that holds them.

Intervals come from a two-stage bootstrap (ideas, then samples within each drawn idea): the
samples of one idea are not independent, and ideas are what a user wants the result to
generalise to. Every draw is seeded, so the same evaluation twice gives the same numbers.
`EvalResult` is what `compare.compare` returns: `eval.json`, `eval.md` and `eval.png`.
"""

from __future__ import annotations

import collections
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

JSON_FILE, MARKDOWN_FILE, GRID_FILE = "eval.json", "eval.md", "eval.png"
"""What `EvalResult.save` writes into its folder."""


def bootstrap_indices(n_ideas: int, n_samples: int, resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two-stage bootstrap draws from a seeded generator: `[resamples, ideas]` idea indices,
    then `[resamples, ideas, samples]` sample indices within each drawn idea. Both stages
    are resampled so that a few ideas (even one) still give an honest interval."""
    rng = np.random.default_rng(seed)
    ideas = rng.integers(0, n_ideas, size=(resamples, n_ideas))
    return ideas, rng.integers(0, n_samples, size=(resamples, n_ideas, n_samples))


def interval(values: np.ndarray, idx: tuple[np.ndarray, np.ndarray]) -> list[float]:
    """95% percentile bootstrap interval of the mean of `values [ideas, samples]`."""
    ideas, samples = idx
    means = values[ideas[..., None], samples].mean(axis=(1, 2))
    return [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]


def paired_stats(base: np.ndarray, tuned: np.ndarray, idx: tuple[np.ndarray, np.ndarray]) -> dict:
    """Means, paired difference and paired win rate of two `[ideas, samples]` score arrays,
    each with its 95% interval; `significant` when the difference's interval excludes 0."""
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
    """The words the tuned prompts use more often than the base prompts: `[[word, extra]]`."""
    extra = collections.Counter(w for p in tuned for w in words(p))
    extra.subtract(w for p in base for w in words(p))
    ranked = sorted(((w, n) for w, n in extra.items() if n > 0), key=lambda x: (-x[1], x[0]))
    return [[w, n] for w, n in ranked[:top]]


@dataclass
class EvalResult:
    """A paired comparison; `to_dict` is eval.json, `markdown` eval.md."""

    names: dict[str, str]
    """What was compared: `{"base": ..., "tuned": ...}`."""
    ideas: list[str]
    samples: int
    seed: int
    rewards: dict[str, dict]
    """Per score column, `paired_stats`."""
    prompts: dict
    """`base` and `tuned` prompt statistics and the `added_words`."""
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
            out.append(f"| {_cell(pair['idea'])} | {_cell(pair['base_prompt'])} | {_cell(pair['tuned_prompt'])} |")
        return "\n".join(out) + "\n"

    def summary(self) -> str:
        """A few lines for the terminal."""
        lines = [f"{self.names['tuned']} vs {self.names['base']} on {len(self.ideas)} ideas x {self.samples} samples:"]
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
        """Write eval.json, eval.md and eval.png (the side-by-side grid) into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / JSON_FILE).write_text(json.dumps(self.to_dict(), indent=2))
        (directory / MARKDOWN_FILE).write_text(self.markdown())
        if self.grid is not None:
            self.grid.save(directory / GRID_FILE)
        return directory


def _ci(mean: float, ci: list[float], sign: bool = False) -> str:
    fmt = "+.4g" if sign else ".4g"
    return f"{mean:{fmt}} [{ci[0]:{fmt}}, {ci[1]:{fmt}}]"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or "(empty)"
