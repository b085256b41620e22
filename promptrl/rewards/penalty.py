"""A guard against the classic reward hack: piling up modifiers makes a prompt long and repetitive."""

from __future__ import annotations

import re

import torch

_STOPWORDS = frozenset(
    "a an the of in on at and or with by to for from into under over as is its his her their".split()
)


class PromptPenalty:
    """A non-positive reward against modifier piling, the classic reward hack.

    penalty = -(length_weight * max(0, words - max_words) / max_words
                + repetition_weight * repetition),
    where repetition is the larger of the fraction of duplicate comma-separated chunks and
    the fraction of duplicate words (stopwords aside). A short prompt without repeats scores 0.
    """

    def __init__(self, max_words: int = 40, length_weight: float = 1.0, repetition_weight: float = 1.0):
        self.max_words, self.length_weight = max_words, length_weight
        self.repetition_weight = repetition_weight

    def penalty(self, prompt: str) -> float:
        """The (non-positive) reward of one prompt."""
        words = re.findall(r"[\w']+", prompt.lower())
        chunks = [c.strip() for c in prompt.lower().split(",") if c.strip()]
        content = [w for w in words if w not in _STOPWORDS]
        repetition = max(
            1 - len(set(chunks)) / len(chunks) if chunks else 0.0,
            1 - len(set(content)) / len(content) if content else 0.0,
        )
        too_long = max(0, len(words) - self.max_words) / self.max_words
        return -(self.length_weight * too_long + self.repetition_weight * repetition)

    def __call__(self, images: torch.Tensor, prompts: list[str], ideas: list[str]) -> torch.Tensor:
        """Penalty per prompt, `[batch]`."""
        return torch.tensor([self.penalty(p) for p in prompts], dtype=torch.float32)
