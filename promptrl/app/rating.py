"""The Rate tab's work: rounds of images for an idea, prepared ahead; choices into the store.

A round is two prompts the served policy samples for one idea (pick the better), or four (pick
the best), all rendered from the same seed. Asking where the fitted reward is least sure, the
policy samples twice as many and the round keeps those whose fitted scores lie closest together.
The browser gets the images and an opaque token; it sends back the token and a choice, never a
prompt, a path or a seed, so a visitor can only rate rounds the server made.

A best-of-four choice goes into the store as the three pairs it decides (the best against each
other image), in the order shown, sharing a `round_id`; "none good" as the two pairs A-B and C-D,
both bad.
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
"""A pair's choices (the button labels)."""
BEST_OF_FOUR_LABELS = {
    "a": "A is best",
    "b": "B is best",
    "c": "C is best",
    "d": "D is best",
    "both_bad": "None good",
    "skip": "Skip",
}
"""A round of four's choices: `both_bad` reads "none good" there."""
SHOWN = (2, 4)
"""Images a round may show."""
PENDING = 64  # rounds shown and not yet rated, kept server-side (oldest dropped first)
LOCAL_RATER = "local"


@dataclass
class Round:
    """What one round shows, and what made it (recorded with the choice)."""

    idea: str
    prompts: list[str]
    images: list  # PIL images
    seed: int
    settings: dict
    model: str
    step: int
    """The served model's training step (its run records it; 0 for a model no run trained)."""
    made: float = field(default_factory=time.time)

    @property
    def labels(self) -> dict[str, str]:
        return CHOICE_LABELS if len(self.images) == 2 else BEST_OF_FOUR_LABELS

    def rows(self, choice: str, rater: str, hashes: list[str], round_id: str) -> list[Choice]:
        """The store's rows for `choice` (not a skip), given the images' content hashes: the pair
        itself, or a best-of-four's pairs (sharing `round_id`)."""
        if len(self.images) == 2:
            pairs, round_id = [(0, 1, choice)], ""
        elif choice == "both_bad":
            pairs = [(0, 1, "both_bad"), (2, 3, "both_bad")]
        else:
            best = "abcd".index(choice)
            pairs = [(min(best, i), max(best, i), "a" if best < i else "b") for i in range(4) if i != best]
        return [
            Choice(
                rater=rater,
                idea=self.idea,
                prompt_a=self.prompts[i],
                prompt_b=self.prompts[j],
                image_a=hashes[i],
                image_b=hashes[j],
                choice=c,
                seed_a=self.seed,
                seed_b=self.seed,
                settings=self.settings,
                model=self.model,
                step=self.step,
                round_id=round_id,
            )
            for i, j, c in pairs
        ]


def rater_name(request) -> str:
    """The authenticated user name; `local` without credentials (loopback only)."""
    name = getattr(request, "username", None) if request is not None else None
    return str(name) if name else LOCAL_RATER


class Rating:
    """The store, the round maker with its one-round-ahead prefetch, and the per-rater bounds."""

    def __init__(
        self,
        models: ModelCache,
        limits: Limits,
        prefs_db: str | Path | None,
        runs_dir: str | Path,
        shared: bool = False,
    ):
        self.db, self.images_dir = preference_paths(prefs_db, runs_dir)
        self._store: PreferenceStore | None = None
        self.models, self.limits = models, limits
        self.shared = shared
        """`--shared-ratings`: a visitor's count and fit cover everyone's choices, not only theirs."""
        self.pending: OrderedDict[str, Round] = OrderedDict()
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

    def scope(self, rater: str) -> str | None:
        """Whose choices `rater` counts and fits: their own, or everyone's (None) when shared."""
        return None if self.shared else rater

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

    # rounds
    def make_round(self, idea: str, shown: int = 2, unsure_head: str | None = None) -> Round:
        """Sample `shown` prompts for `idea` and render them from one seed; with `unsure_head` (a
        fitted reward's folder), sample twice as many and keep the `shown` whose fitted scores lie
        closest together."""
        if shown not in SHOWN:
            raise UserError(f"A round shows {' or '.join(map(str, SHOWN))} images, not {shown}.")
        tuned, _ = self.models.generators()
        n = 2 * shown if unsure_head else shown
        with self.models.lock:
            seed = self._rng.randrange(2**31)
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                prompts = tuned([idea] * n).prompts
            renderer = self.models.renderer()
            out = renderer(prompts, ideas=[idea] * n, seeds=[seed] * n, return_pil=True)
            keep = list(range(n))
            if unsure_head:
                from ..rewards.learned import LearnedPreferenceReward

                scores = LearnedPreferenceReward(unsure_head, renderer.device)(out.images, prompts, [idea] * n)
                keep = closest(scores.tolist(), shown)
        c = renderer.config
        settings = {"steps": c.num_inference_steps, "guidance": c.guidance_scale, "height": c.height, "width": c.width}
        return Round(
            idea,
            [prompts[i] for i in keep],
            [out.pil[i] for i in keep],
            seed,
            settings,
            self.models.policy_dir,
            self.models.policy_step,
        )

    def next_round(self, idea: str | None, shown: int = 2, unsure_head: str | None = None) -> tuple[str, Round]:
        """A token and a round for `idea` (None: the next served idea); the following round for
        the same source is prepared in the background meanwhile."""
        key = (idea, shown, unsure_head)
        with self.lock:
            future = self.ahead.pop(key, None)
        made = future.result() if future is not None else self.make_round(idea or self.next_idea(), shown, unsure_head)
        with self.lock:
            self.ahead[key] = self.pool.submit(self.make_round, idea or self.next_idea(), shown, unsure_head)
            while len(self.ahead) > 4:
                self.ahead.pop(next(iter(self.ahead))).cancel()
            token = secrets.token_hex(16)
            self.pending[token] = made
            while len(self.pending) > PENDING:
                self.pending.popitem(last=False)
        return token, made

    # choices
    def choose(self, token: str, choice: str, rater: str) -> list[int]:
        """Record `rater`'s choice for the round `token` showed; the rows' ids ([] for a skip)."""
        with self.lock:
            shown = self.pending.pop(str(token), None)
        if shown is None:
            raise UserError("That round is not waiting for a choice (rated already, or too old): get the next one.")
        if choice not in shown.labels:
            self._wait_again(token, shown)
            what = "a pair" if len(shown.images) == 2 else "four images"
            raise UserError(f"For {what}, choose one of {', '.join(shown.labels)}, not {str(choice)[:20]!r}.")
        if choice == "skip":
            return []
        if self.store.recent(rater, time.time() - 60) >= self.limits.ratings_per_minute:
            self._wait_again(token, shown)
            raise UserError(f"At most {self.limits.ratings_per_minute} choices a minute: wait a moment.")
        self.store.check_room()  # before any image is written
        hashes = [self.store.put_image(im) for im in shown.images]
        return self.store.add_all(shown.rows(choice, rater, hashes, secrets.token_hex(8)))

    def _wait_again(self, token: str, shown: Round) -> None:
        with self.lock:
            self.pending[str(token)] = shown

    def reward_dir(self, rater: str) -> Path:
        return preference_reward_dir(self.db, rater)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self._store is not None:
            self._store.close()


def closest(scores: list[float], k: int) -> list[int]:
    """Indexes of the `k` scores that lie closest together (the smallest range), in index order."""
    order = sorted(range(len(scores)), key=scores.__getitem__)
    first = min(range(len(order) - k + 1), key=lambda i: scores[order[i + k - 1]] - scores[order[i]])
    return sorted(order[first : first + k])
