"""The trl 0.1-compatible API, BLOOM flavour (the 2022 BLOOM fork of trl 0.1):
`from promptrl.bloom import BloomHeadWithValueModel, respond_to_batch`; the rest as in
`promptrl.gpt2`.
"""

from .ppo.sampling import respond_to_batch
from .ppo.value_head import ValueHeadModel


class BloomHeadWithValueModel(ValueHeadModel):
    """The BLOOM fork's `BloomHeadWithValueModel`: BLOOM plus a scalar value head (a
    `ValueHeadModel`, whose head is a real `Linear(hidden, 1)`); `from_pretrained` refuses other
    architectures."""

    expected_model_type = "bloom"


__all__ = ["BloomHeadWithValueModel", "respond_to_batch"]
