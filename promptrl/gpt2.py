"""The trl 0.1-compatible API, GPT-2 flavour: `from promptrl.gpt2 import GPT2HeadWithValueModel,
respond_to_batch`, then `promptrl.ppo.PPOTrainer(model, model_ref, tokenizer, **params)` and
`step(queries, responses, scores)`, as in trl 0.1's README with `trl` replaced by `promptrl`.
"""

from .ppo.sampling import respond_to_batch
from .ppo.value_head import ValueHeadModel


class GPT2HeadWithValueModel(ValueHeadModel):
    """trl 0.1's `GPT2HeadWithValueModel`: GPT-2 plus a scalar value head (a `ValueHeadModel`);
    `from_pretrained` refuses other architectures."""

    expected_model_type = "gpt2"


__all__ = ["GPT2HeadWithValueModel", "respond_to_batch"]
