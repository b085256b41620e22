"""The `rewards` section of the training config: which rewards, their models and the baseline."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .. import checks
from ..errors import UsageError
from .baselines import BASELINES


@dataclass
class RewardsConfig:
    terms: list[dict] = field(default_factory=lambda: [{"type": "aesthetic", "weight": 1.0}])
    """Reward terms, e.g. `{type: similarity, weight: 0.5, hinge: 0.3}`; see rewards.build_reward."""
    clip_model: str = "ViT-L-14"
    """open_clip model name shared by the CLIP-based rewards."""
    clip_pretrained: str = "openai"
    """open_clip pretrained tag or local weights file."""
    aesthetic_weights: str | None = None
    """LAION aesthetic MLP weights: local file or `hf://repo/file` (default: the public one)."""
    pickscore_model: str = "yuvalkirstain/PickScore_v1"
    """transformers CLIPModel of the `pickscore` reward (hub name or local directory)."""
    pickscore_processor: str | None = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
    """Its CLIPProcessor (None: the model's own directory)."""
    hps_model: str = "ViT-H-14"
    """open_clip model of the `hps` reward."""
    hps_weights: str = "hf://xswu/HPSv2/HPS_v2.1_compressed.pt"
    """HPSv2.1 checkpoint: local file or `hf://repo/file` (read with torch.load(weights_only=True))."""
    baseline: str = "none"
    """Reward normalisation against variance across ideas: 'none'; 'per_idea' (running mean/std of
    each idea); 'group' (mean/std over this batch's samples of the same idea: needs
    samples_per_idea >= 2)."""

    def __post_init__(self):
        checks.check_types(self, "rewards")
        checks.one_of("rewards", "baseline", self.baseline, tuple(BASELINES))
        for i, term in enumerate(self.terms):
            if not isinstance(term, dict) or not isinstance(term.get("type"), str):
                raise UsageError(
                    f"config key 'rewards.terms' item {i + 1} must be a mapping with a 'type' "
                    f"(e.g. {{type: aesthetic, weight: 1.0}}), got {term!r}."
                )
            weight = term.get("weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
                raise UsageError(
                    f"config key 'rewards.terms' item {i + 1} ({term['type']}) has weight {weight!r}; "
                    "a weight must be a finite number."
                )
