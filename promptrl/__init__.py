"""promptrl: fine-tune a Stable Diffusion prompt generator with PPO on image rewards.

The image loop is `trainer.PromptTrainer`; the trl 0.1-compatible API (value-head models in
`promptrl.gpt2` / `promptrl.bloom`, `respond_to_batch`, `PPOTrainer.step(queries, responses,
scores)`) trains on any reward you compute yourself.
"""

from .core import compute_advantages, logprobs_from_logits, whiten
from .generation import PromptGenerationConfig, PromptGenerator, respond_to_batch
from .models import ValueHeadModel
from .ppo import PPOTrainer
from .ppo_config import PPOConfig

__version__ = "0.1.0"

__all__ = [
    "PPOConfig",
    "PPOTrainer",
    "PromptGenerationConfig",
    "PromptGenerator",
    "ValueHeadModel",
    "compute_advantages",
    "logprobs_from_logits",
    "respond_to_batch",
    "whiten",
]
