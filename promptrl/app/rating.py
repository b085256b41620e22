"""The Rate tab's work: pairs of images for an idea, prepared ahead; choices into the store.

A pair is two prompts the served policy samples for one idea (or, asking where the fitted reward
is least sure, the two of four candidates whose fitted scores are closest), both rendered from
the same seed. The browser gets the images and an opaque token; it sends back the token and a
choice, never a prompt, a path or a seed, so a visitor can only rate pairs the server made.
"""

from __future__ import annotations

import itertools
import random
import secrets
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..ideas import load_ideas
from ..prefs.store import Choice, PreferenceStore
from ..rundir import preference_paths, preference_reward_dir
from .limits import Limits, UserError
from .model_cache import ModelCache

CHOICE_LABELS = {"a": "A is better", "b": "B is better", "tie": "Tie", "both_bad": "Both bad", "skip": "Skip"}
PENDING = 256  # pairs shown and not yet rated, kept server-side (oldest dropped first)
LOCAL_RATER = "local"


@dataclass
class Pair:
    idea: str
    prompts: list[str]
    images: list  # PIL images
    seed: int
    settings: dict
    model: str
    step: int = 0
    made: float = field(default_factory=time.time)


def rater_name(request) -> str:
    """The authenticated user name; `local` without credentials (loopback only)."""
    name = getattr(request, "username", None) if request is not None else None
    return str(name) if name else LOCAL_RATER


class Rating:
    """The store, the pair maker with its one-pair-ahead prefetch, and the per-rater bounds."""

    def __init__(self, models: ModelCache, limits: Limits, prefs_db: str | Path | None, runs_dir: str | Path):
        self.db, self.images_dir = preference_paths(prefs_db, runs_dir)
        self._store: PreferenceStore | None = None
        self.models, self.limits = models, limits
        self.pending: OrderedDict[str, Pair] = OrderedDict()
        self.ahead: dict[tuple, Future] = {}
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="promptrl-rate")
        self.lock = threading.Lock()
        self._ideas: list[str] | None = None
        self._next_idea = itertools.count()
        self._rng = random.Random(0)

    @property
    def store(self) -> PreferenceStore:
        """Opened on first use: an app nobody rates in writes nothing."""
        with self.lock:
            if self._store is None:
                self._store = PreferenceStore(self.db, self.images_dir, max_bytes=self.limits.prefs_mb * 1024 * 1024)
            return self._store

    # ideas
    def ideas(self) -> list[str]:
        if self._ideas is None:
            try:
                self._ideas = load_ideas(self.models.config.ideas)
            except Exception:  # the served config's ideas may be a hub dataset offline: use a few of our own
                self._ideas = ["a lighthouse in a storm", "a cat in a garden", "a city at night"]
        return self._ideas

    def next_idea(self) -> str:
        ideas = self.ideas()
        return ideas[next(self._next_idea) % len(ideas)]

    # pairs
    def make_pair(self, idea: str, unsure_head: str | None = None) -> Pair:
        """Sample prompts for `idea` and render them from one seed (four candidates, keeping the
        closest-scored two, when `unsure_head` names a fitted reward folder)."""
        tuned, _ = self.models.generators()
        n = 4 if unsure_head else 2
        with self.models.lock:
            seed = self._rng.randrange(2**31)
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                prompts = tuned([idea] * n).prompts
            renderer = self.models.renderer()
            out = renderer(prompts, ideas=[idea] * n, seeds=[seed] * n, return_pil=True)
            keep = [0, 1]
            if unsure_head:
                from ..rewards.learned import LearnedPreferenceReward

                scores = LearnedPreferenceReward(unsure_head, renderer.device)(out.images, prompts, [idea] * n)
                keep = list(min(itertools.combinations(range(n), 2), key=lambda p: abs(scores[p[0]] - scores[p[1]])))
        c = renderer.config
        settings = {"steps": c.num_inference_steps, "guidance": c.guidance_scale, "height": c.height, "width": c.width}
        return Pair(
            idea, [prompts[i] for i in keep], [out.pil[i] for i in keep], seed, settings, self.models.policy_dir
        )

    def next_pair(self, idea: str | None, unsure_head: str | None = None) -> tuple[str, Pair]:
        """A token and a pair for `idea` (None: the next served idea); the following pair for the
        same source is prepared in the background meanwhile."""
        key = (idea, unsure_head)
        with self.lock:
            future = self.ahead.pop(key, None)
        pair = future.result() if future is not None else self.make_pair(idea or self.next_idea(), unsure_head)
        with self.lock:
            self.ahead[key] = self.pool.submit(self.make_pair, idea or self.next_idea(), unsure_head)
            while len(self.ahead) > 4:
                self.ahead.pop(next(iter(self.ahead))).cancel()
            token = secrets.token_hex(16)
            self.pending[token] = pair
            while len(self.pending) > PENDING:
                self.pending.popitem(last=False)
        return token, pair

    # choices
    def choose(self, token: str, choice: str, rater: str) -> int | None:
        """Record `rater`'s choice for the pair `token` showed (None for a skip); the row id."""
        if choice not in CHOICE_LABELS:
            raise UserError(f"Choose one of {', '.join(CHOICE_LABELS)}, not {str(choice)[:20]!r}.")
        with self.lock:
            pair = self.pending.pop(str(token), None)
        if pair is None:
            raise UserError("That pair is not waiting for a choice (rated already, or too old): get the next pair.")
        if choice == "skip":
            return None
        if self.store.recent(rater, time.time() - 60) >= self.limits.ratings_per_minute:
            with self.lock:
                self.pending[str(token)] = pair
            raise UserError(f"At most {self.limits.ratings_per_minute} choices a minute: wait a moment.")
        hashes = [self.store.put_image(im) for im in pair.images]
        row = Choice(
            rater=rater,
            idea=pair.idea,
            prompt_a=pair.prompts[0],
            prompt_b=pair.prompts[1],
            image_a=hashes[0],
            image_b=hashes[1],
            choice=choice,
            seed_a=pair.seed,
            seed_b=pair.seed,
            settings=pair.settings,
            model=pair.model,
            step=pair.step,
        )
        return self.store.add(row)

    def reward_dir(self, rater: str) -> Path:
        return preference_reward_dir(self.db, rater)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self._store is not None:
            self._store.close()
