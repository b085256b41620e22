"""PPO for causal language models, trl 0.1-compatible: `PPOTrainer.step(queries, responses, scores)`.

This package is a library of its own: it knows nothing of images. One module per job:

- `trainer`: `PPOTrainer`, one algorithm read top to bottom;
- `group`: `GRPOTrainer` and `RLOOTrainer`, which share its loop without a value head;
- `config`: `PPOConfig` (what the three share), `GRPOConfig`, `RLOOConfig`;
- `core`: the math as plain functions (log-probs, masked statistics, GAE, the loss, KL control);
- `batch`: the step's inputs checked and packed; `stats`: the statistics it returns;
- `rollback`: a step that undoes itself when it went non-finite;
- `value_head`: `ValueHeadModel`, any causal LM with a scalar value head;
- `sampling`: rollouts (`PromptGenerator`, `respond_to_batch`);
- `sentiment`: trl 0.1's example task (positive movie reviews).
"""

from .config import GRPOConfig, PPOConfig, RLOOConfig
from .core import compute_advantages, logprobs_from_logits, whiten
from .group import ALGORITHMS, GRPOTrainer, RLOOTrainer
from .rollback import NonFiniteError, RollbackGuard
from .sampling import PromptGenerationConfig, PromptGenerator, Rollout, respond_to_batch
from .trainer import PPOTrainer
from .value_head import ValueHeadModel

__all__ = [
    "ALGORITHMS",
    "GRPOConfig",
    "GRPOTrainer",
    "NonFiniteError",
    "PPOConfig",
    "PPOTrainer",
    "PromptGenerationConfig",
    "PromptGenerator",
    "RLOOConfig",
    "RLOOTrainer",
    "RollbackGuard",
    "Rollout",
    "ValueHeadModel",
    "compute_advantages",
    "logprobs_from_logits",
    "respond_to_batch",
    "whiten",
]
