"""promptrl: fine-tune a text-to-image prompt generator with reinforcement learning on image rewards.

Three products in one package:

- the image loop, at the top: `PromptTrainer(load_config("tiny")).train()` samples prompts from
  short ideas, renders them (`rendering`), scores the images (`rewards`) and trains the
  generator with PPO; a run on disk is a `rundir.Run`; `eval` says whether it helped; `cli`
  and `app` put it on the command line and in the browser;
- `promptrl.ppo`, the trl 0.1-compatible PPO library: value-head models (also as
  `promptrl.gpt2` / `promptrl.bloom`), `respond_to_batch`, `PPOTrainer.step(queries,
  responses, scores)` on any reward you compute yourself;
- `promptrl.standins`, tiny offline stand-ins for the hub's models.
"""

from .config import TrainConfig, load_config
from .ppo import PPOConfig, PPOTrainer, PromptGenerationConfig, PromptGenerator, ValueHeadModel, respond_to_batch
from .ppo.core import compute_advantages, logprobs_from_logits, whiten
from .rundir import Run
from .trainer import PromptTrainer

__version__ = "0.1.0"

__all__ = [
    "PPOConfig",
    "PPOTrainer",
    "PromptGenerationConfig",
    "PromptGenerator",
    "PromptTrainer",
    "Run",
    "TrainConfig",
    "ValueHeadModel",
    "compute_advantages",
    "load_config",
    "logprobs_from_logits",
    "respond_to_batch",
    "whiten",
]
