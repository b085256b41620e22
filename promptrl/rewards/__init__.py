"""Image rewards: turn each rendered image into one number for PPO.

- `protocol`: what a reward is (`(images, prompts, ideas) -> [batch]`), `call_reward`'s checks,
  `WeightedSum` and `score`;
- `clip`: the LAION aesthetic predictor (`AestheticReward`) and image-idea similarity
  (`ClipSimilarityReward`) on open_clip embeddings;
- `preference`: the human-preference models PickScore (`PickScoreReward`) and HPSv2.1
  (`HPSReward`);
- `penalty`: `PromptPenalty`, against piling up modifiers;
- `embedders`: the CLIP towers the rewards share;
- `build`: the `{type: builder}` table behind `build_reward` and `reward_from_config`;
- `baselines`: what the total is measured against before PPO sees it;
- `config`: `RewardsConfig`, the `rewards` section of the training config.
"""

from .baselines import BASELINES, make_baseline
from .build import ALL_WEIGHTS_ZERO, BUILDERS, Defaults, build_reward, import_target, reward_from_config, weighted_terms
from .clip import AestheticReward, ClipSimilarityReward
from .config import RewardsConfig
from .embedders import ClipModel, TransformersClip
from .penalty import PromptPenalty
from .preference import HPSReward, PickScoreReward
from .protocol import RewardError, RewardFn, WeightedSum, call_reward, reward_name, score, with_terms

__all__ = [
    "ALL_WEIGHTS_ZERO",
    "BASELINES",
    "BUILDERS",
    "AestheticReward",
    "ClipModel",
    "ClipSimilarityReward",
    "Defaults",
    "HPSReward",
    "PickScoreReward",
    "PromptPenalty",
    "RewardError",
    "RewardFn",
    "RewardsConfig",
    "TransformersClip",
    "WeightedSum",
    "build_reward",
    "call_reward",
    "import_target",
    "make_baseline",
    "reward_from_config",
    "reward_name",
    "score",
    "weighted_terms",
    "with_terms",
]
