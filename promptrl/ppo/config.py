"""PPO hyper-parameters. Defaults are trl 0.1's where it had the key (the trl 0.1-compatible API)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .. import checks
from ..errors import UsageError


@dataclass
class PPOConfig:
    lr: float = 1.41e-5
    """Adam learning rate."""
    adap_kl_ctrl: bool = True
    """Adapt the KL coefficient toward `target` (else keep `init_kl_coef` fixed)."""
    init_kl_coef: float = 0.2
    """Starting weight of the per-token KL penalty against the reference model."""
    target: float = 6.0
    """Target KL (nats per sequence) of the adaptive controller."""
    horizon: float = 10000
    """Horizon of the adaptive controller: larger means slower coefficient changes."""
    gamma: float = 1.0
    """Discount factor."""
    lam: float = 0.95
    """GAE lambda."""
    cliprange: float = 0.2
    """PPO clip range of the probability ratio."""
    cliprange_value: float = 0.2
    """Clip range of the value prediction around the rollout's value."""
    vf_coef: float = 0.1
    """Weight of the value loss."""
    batch_size: int = 256
    """Samples per `step` call (per process)."""
    forward_batch_size: int = 16
    """Samples per no-grad forward pass when computing rollout log-probs and values."""
    mini_batch_size: int = 16
    """Samples per gradient step; capped at `batch_size`."""
    ppo_epochs: int = 4
    """Passes over the shuffled batch per `step`."""
    group_by_length: bool = True
    """Put samples of similar length in the same minibatch (in random minibatch order): less
    padding, so faster steps when response lengths vary (trl 0.11 padded every minibatch to
    the batch's longest sample). A grouped minibatch is not a uniform sample, so its token-mean
    loss is weighted by its share of the batch's tokens (tokens / mean tokens per minibatch):
    an epoch's gradients then add up to the whole batch's token mean, as uniform minibatches'
    do on average, and short responses' tokens weigh no more than long ones'. False: uniform
    random minibatches, each loss a plain token mean (trl's)."""
    gradient_accumulation_steps: int = 1
    """Minibatches whose gradients are averaged into one optimizer step. An epoch whose
    minibatch count is not a multiple steps on its last, smaller group: gradients never carry
    over into the next epoch or step."""
    max_grad_norm: float | None = 1.0
    """Clip the global gradient norm to this (None: no clipping)."""
    early_stopping: bool = False
    """Stop the step's epochs at the first minibatch whose approximate KL (before its update,
    averaged over processes) exceeds 1.5 x `target_kl`; that minibatch is not trained on."""
    target_kl: float = 1.0
    """Approximate-KL threshold for early stopping."""
    use_score_scaling: bool = False
    """Divide scores by their running standard deviation."""
    use_score_norm: bool = False
    """With score scaling, also subtract the running mean."""
    score_clip: float | None = None
    """Clip (scaled) scores to [-score_clip, score_clip]."""
    ratio_threshold: float | None = 10.0
    """Skip (do not train on) a minibatch whose mean importance ratio exceeds this: the policy
    has drifted too far from the rollout for the clipped objective to be trusted. Counted in
    `ppo/skipped_minibatches`. None: never skip."""
    whiten_rewards: bool = False
    """Whiten the per-token rewards before GAE."""
    temperature: float = 1.0
    """Sampling temperature of the rollouts: log-probs are computed at the same temperature."""
    adam_eps: float = 1e-8
    """Adam epsilon."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    mixed_precision: str = "no"
    """accelerate mixed precision: 'no', 'fp16' or 'bf16'."""
    seed: int = 0
    """Seed of the minibatch shuffling."""

    def __post_init__(self):
        checks.check_types(self, "ppo")
        for name in (
            "batch_size",
            "forward_batch_size",
            "mini_batch_size",
            "ppo_epochs",
            "gradient_accumulation_steps",
        ):
            checks.at_least("ppo", name, getattr(self, name), 1)
        for name in ("gamma", "lam"):
            checks.at_least("ppo", name, getattr(self, name), 0.0, 1.0)
        for name in ("lr", "target", "horizon", "cliprange", "cliprange_value", "target_kl", "temperature", "adam_eps"):
            checks.positive("ppo", name, getattr(self, name))
        for name in ("init_kl_coef", "vf_coef", "weight_decay"):
            checks.at_least("ppo", name, getattr(self, name), 0.0)
        for name in ("max_grad_norm", "score_clip"):
            if getattr(self, name) is not None:
                checks.positive("ppo", name, getattr(self, name))
        if self.ratio_threshold is not None:
            checks.at_least("ppo", "ratio_threshold", self.ratio_threshold, 1.0)
        checks.one_of("ppo", "mixed_precision", self.mixed_precision, ("no", "fp16", "bf16"))

    @classmethod
    def given(cls, config: PPOConfig | None, params: dict) -> PPOConfig:
        """`config`, else one from trl 0.1-style keyword `params`; both at once is an error."""
        if config is not None and params:
            raise UsageError("Pass either a PPOConfig or keyword PPO parameters, not both.")
        return config if config is not None else cls.from_kwargs(**params)

    @classmethod
    def from_kwargs(cls, **params) -> PPOConfig:
        """Build from trl 0.1-style keyword params; an unknown key is an error naming the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise UsageError(f"Unknown PPO parameter(s) {unknown}. Known parameters: {', '.join(sorted(known))}.")
        return cls(**params)

    def to_dict(self) -> dict:
        return asdict(self)


GROUP_SCALES = ("group", "batch", "none")
GRPO_LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")


@dataclass
class GRPOConfig:
    """GRPO's own settings, with trl's `GRPOTrainer` names and defaults; what the algorithms
    share (lr, batch sizes, `cliprange` as the lower clip epsilon, ...) is `PPOConfig`'s."""

    beta: float = 0.0
    """Weight of the per-token k3 KL to the reference in the loss. 0: no reference model is
    loaded and no reference pass runs."""
    epsilon_high: float | None = None
    """The ratio is clipped to [1 - ppo.cliprange, 1 + epsilon_high]; None: ppo.cliprange on
    both sides (DAPO suggests 0.28)."""
    scale_rewards: str = "group"
    """Divide each advantage (score minus its group's mean) by the group's std ('group'), the
    batch's ('batch') or nothing ('none', Dr. GRPO's advice), + 1e-4."""
    loss_type: str = "dapo"
    """How the per-token loss is reduced: 'grpo' (each sequence's token mean, then their mean),
    'bnpo' (token mean over the minibatch), 'dr_grpo' (sum / (sequences x max_completion_length)),
    'dapo' (token mean over the optimizer step's tokens on every process)."""
    num_iterations: int = 1
    """Passes over each batch (trl's mu); more than 1 reuses the samples off-policy, clipped."""
    max_completion_length: int | None = None
    """dr_grpo's length constant; None: the batch's longest response (`PromptTrainer`:
    generation.max_new_tokens)."""

    def __post_init__(self):
        checks.check_types(self, "grpo")
        checks.at_least("grpo", "beta", self.beta, 0.0)
        if self.epsilon_high is not None:
            checks.positive("grpo", "epsilon_high", self.epsilon_high)
        checks.one_of("grpo", "scale_rewards", self.scale_rewards, GROUP_SCALES)
        checks.one_of("grpo", "loss_type", self.loss_type, GRPO_LOSS_TYPES)
        checks.at_least("grpo", "num_iterations", self.num_iterations, 1)
        if self.max_completion_length is not None:
            checks.at_least("grpo", "max_completion_length", self.max_completion_length, 1)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RLOOConfig:
    """RLOO's own settings, with trl's `RLOOTrainer` names and defaults; what the algorithms
    share is `PPOConfig`'s."""

    beta: float = 0.05
    """Weight of the KL penalty in the reward: each sequence's summed log-ratio to the reference
    (k1), subtracted from its score. 0: no reference model is loaded and no reference pass runs."""
    epsilon_high: float | None = None
    """The sequence ratio is clipped to [1 - ppo.cliprange, 1 + epsilon_high]; None: ppo.cliprange."""
    normalize_advantages: bool = False
    """Shift and scale the advantages to mean 0 and std 1 over the whole batch."""
    num_iterations: int = 1
    """Passes over each batch."""

    def __post_init__(self):
        checks.check_types(self, "rloo")
        checks.at_least("rloo", "beta", self.beta, 0.0)
        if self.epsilon_high is not None:
            checks.positive("rloo", "epsilon_high", self.epsilon_high)
        checks.at_least("rloo", "num_iterations", self.num_iterations, 1)

    def to_dict(self) -> dict:
        return asdict(self)
