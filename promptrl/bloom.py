"""Seed API: BLOOM with a value head (`from promptrl.bloom import BloomHeadWithValueModel`)."""

from .generation import respond_to_batch
from .models import ValueHeadModel


class BloomHeadWithValueModel(ValueHeadModel):
    """BLOOM plus a scalar value head; `from_pretrained` refuses other architectures."""

    expected_model_type = "bloom"


__all__ = ["BloomHeadWithValueModel", "respond_to_batch"]
