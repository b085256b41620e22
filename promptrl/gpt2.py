"""Seed API: GPT-2 with a value head (`from promptrl.gpt2 import GPT2HeadWithValueModel`)."""

from .generation import respond_to_batch
from .models import ValueHeadModel


class GPT2HeadWithValueModel(ValueHeadModel):
    """GPT-2 plus a scalar value head; `from_pretrained` refuses other architectures."""

    expected_model_type = "gpt2"


__all__ = ["GPT2HeadWithValueModel", "respond_to_batch"]
