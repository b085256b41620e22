"""Did tuning help? A paired comparison of two prompt generators on held-out ideas.

For every idea and sample slot both generators sample with the same seed and their prompts
are rendered from the same image noise, so the two images of a pair differ only by the
prompt. Every reward (and judge) scores every image; per reward the report gives both means
with bootstrap 95% intervals, the paired difference and the paired win rate (ties count half)
with theirs, from a seeded two-stage bootstrap (the statistics and the report:
`stats.py`).

Prompt statistics show what the tuning did to the text: distinct-1/2 (a collapse onto the same
modifiers drives them down), mean length, the share cut at the text encoder's token limit and
the words the tuned generator adds most.
"""

from __future__ import annotations

import collections
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..errors import UsageError
from ..plots import image_grid
from ..ppo.sampling import PromptGenerator
from ..rendering import Renderer, idea_seed
from ..rewards import RewardFn, WeightedSum, reward_from_config, score
from ..seeds import derive_seed
from .stats import EvalResult, added_words, bootstrap_indices, paired_stats, prompt_stats

JUDGE_PREFIX = "judge/"
PREFERENCE_MODELS = ("pickscore", "hps")


def heldout_split(ideas: list[str], n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """`(train, heldout)`: the `n` distinct ideas (at most a quarter of them) with the
    smallest seeded hashes are held out (none when that would be a single idea: nothing to judge
    by, one idea fewer to train on). A hash, not a shuffle, so an idea's side does not
    depend on the order of the list or on the other ideas."""
    distinct = list(dict.fromkeys(ideas))
    n = min(n, len(distinct) // 4)
    n = n if n >= 2 else 0
    ranked = sorted(distinct, key=lambda i: hashlib.sha256(f"heldout\x00{seed}\x00{i}".encode()).digest())
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
    """`judges` as given, else a preference model the training reward does not use and whose
    weights are at hand, else the similarity reward."""
    if judges is not None:
        return [dict(j) for j in judges]
    trained = {t.get("type") for t in rewards_config.terms}
    at_hand = {"pickscore": rewards_config.pickscore_model, "hps": rewards_config.hps_weights}
    for kind in PREFERENCE_MODELS:
        if kind not in trained and weights_at_hand(at_hand[kind]):
            return [{"type": kind}]
    return [{"type": "similarity"}]


def judges_from_config(config, device=None) -> WeightedSum:
    """The held-out judges of a `TrainConfig` (`resolve_judges` of `eval.judges`), built
    with its reward settings."""
    return reward_from_config(config.rewards, device, resolve_judges(config.eval.judges, config.rewards))


# --------------------------------------------------------------------------- sampling


@dataclass
class ModelSamples:
    """One generator's side of an evaluation; arrays are `[ideas, samples]`."""

    prompts: list[list[str]]
    truncated: np.ndarray
    scores: dict[str, np.ndarray]
    images: list[Image.Image] = field(default_factory=list)
    """The first sample's image of each idea (for the grid)."""


def sampling_seed(seed: int, slot: int) -> int:
    """Torch seed of sample slot `slot`: the same for both generators."""
    return derive_seed(seed, "eval/sampling", slot)


def image_seed(seed: int, slot: int, idea: str) -> int:
    """Image seed of `idea` in sample slot `slot`: the same for both generators."""
    return idea_seed(derive_seed(seed, "eval/images", slot), idea)


def score_columns(reward: RewardFn, judges: WeightedSum | None, images, prompts, ideas) -> dict[str, torch.Tensor]:
    """Named score columns: the reward's components (and `total` when it has several),
    then each judge as `judge/<name>`."""
    total, components = score(reward, images, prompts, ideas)
    columns = dict(components)
    if len(components) > 1:
        columns = {"total": total, **columns}
    if judges is not None:
        columns.update({JUDGE_PREFIX + k: v for k, v in score(judges, images, prompts, ideas)[1].items()})
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
    """`samples` prompts per idea from `generator`, rendered and scored.

    Slot `k` samples every idea in one batch from torch seed `sampling_seed(seed, k)` and
    renders idea `i` from image seed `image_seed(seed, k, i)`; the caller's RNG state is
    left as it was.
    """
    prompts, truncated, columns, images = [], [], collections.defaultdict(list), []
    for k in range(samples):
        with torch.random.fork_rng():
            torch.manual_seed(sampling_seed(seed, k))
            rollout = generator(ideas)
        seeds = [image_seed(seed, k, i) for i in ideas]
        # Evaluation decodes with the full VAE, also in a run whose training renders preview.
        out = renderer(rollout.prompts, ideas=ideas, seeds=seeds, return_pil=k == 0, preview=False)
        for name, values in score_columns(reward, judges, out.images, out.prompts, ideas).items():
            columns[name].append(values.numpy())
        prompts.append(rollout.prompts)
        truncated.append(out.truncated)
        images = images or out.pil
        if bar is not None:
            bar.update(1)
    by_idea = [list(p) for p in zip(*prompts)]
    return ModelSamples(by_idea, np.array(truncated).T, {k: np.stack(v, 1) for k, v in columns.items()}, images)


def compare_samples(
    base: ModelSamples,
    tuned: ModelSamples,
    ideas: list[str],
    seed: int = 0,
    bootstrap: int = 2000,
    names: dict[str, str] | None = None,
) -> EvalResult:
    """Statistics, tables and grid of two generators' `ModelSamples` on the same ideas."""
    samples = base.truncated.shape[1]
    idx = bootstrap_indices(len(ideas), samples, bootstrap, seed)
    rewards = {name: paired_stats(base.scores[name], tuned.scores[name], idx) for name in base.scores}
    flat = {side: [p for row in s.prompts for p in row] for side, s in (("base", base), ("tuned", tuned))}
    prompts = {
        "base": prompt_stats(flat["base"], base.truncated),
        "tuned": prompt_stats(flat["tuned"], tuned.truncated),
        "added_words": added_words(flat["base"], flat["tuned"]),
    }
    pairs = [
        {
            "idea": idea,
            "sample": k,
            "image_seed": image_seed(seed, k, idea),
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
    """Sample, render and score both generators on `ideas`, then compare them (see module doc)."""
    if not ideas:
        raise UsageError("No ideas to evaluate on; pass at least one idea.")
    bar = tqdm(total=2 * samples, desc="eval", disable=not progress)
    sides = {
        side: sample_and_score(gen, renderer, reward, ideas, samples, seed, judges, bar)
        for side, gen in (("base", base), ("tuned", tuned))
    }
    bar.close()
    return compare_samples(sides["base"], sides["tuned"], ideas, seed, bootstrap, names)
