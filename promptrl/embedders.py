"""CLIP towers as embedders for the rewards: caching shared by every wrapper, and a
transformers ``CLIPModel`` with its processor (PickScore's loaders).

The open_clip wrapper, ``rewards.ClipModel``, uses the same two helpers: one instance per
(model, weights, device, dtype) in a process, and one image forward per batch however many
rewards ask for its embeddings.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch
import torch.nn.functional as F

from promptrl.rendering import resolve_device, resolve_dtype


def shared_instance(cls, name: str, weights: str | None, device, dtype):
    """``cls(name, weights, device, dtype)``, built once per process for those arguments and
    kept in ``cls._shared``."""
    resolved = resolve_device(device)
    key = (name, weights, str(resolved), resolve_dtype(dtype, resolved))
    if key not in cls._shared:
        cls._shared[key] = cls(name, weights, resolved, key[3])
    return cls._shared[key]


class LastBatchCache:
    """Remembers one function's result for the last image batch it saw.

    The batch is held by weak reference and recognised by identity and in-place version, so
    a new or modified tensor is always recomputed and a freed one is never kept alive.
    """

    def __init__(self):
        self._key: tuple | None = None
        self._value: torch.Tensor | None = None

    def get(
        self, images: torch.Tensor, compute: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """``compute(images)``, or its remembered result for this very batch."""
        if self._key is not None:
            ref, version = self._key
            if ref() is images and version == images._version:
                return self._value
        value = compute(images)
        self._key, self._value = (weakref.ref(images), images._version), value
        return value


class TransformersClip:
    """A transformers ``CLIPModel`` and its processor, embedding image tensors and texts.

    Images go through the processor as tensors already in [0, 1] (no rescaling), batched,
    on the model's device; fp16 on a GPU. One instance per (model, processor, device, dtype).
    """

    _shared: dict[tuple, TransformersClip] = {}

    def __init__(self, model: str, processor: str | None = None, device=None, dtype=None):
        from transformers import AutoProcessor, CLIPModel

        from promptrl.models import check_model_source

        check_model_source(model, "PickScore model")
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.name = model
        try:
            self.model = CLIPModel.from_pretrained(model, dtype=self.dtype).to(self.device).eval()
            self.processor = AutoProcessor.from_pretrained(processor or model)
        except OSError as e:  # transformers' own message runs to several lines
            raise FileNotFoundError(
                f"could not load the CLIP model {model!r} / processor {processor or model!r} "
                f"({type(e).__name__}); download them or point rewards.pickscore_model and "
                "rewards.pickscore_processor at local directories"
            ) from e
        self.max_length = self.model.config.text_config.max_position_embeddings
        self._last_batch = LastBatchCache()

    @classmethod
    def shared(
        cls, model: str, processor: str | None = None, device=None, dtype=None
    ) -> TransformersClip:
        """The process-wide instance for these arguments (loaded on first use)."""
        return shared_instance(cls, model, processor, device, dtype)

    @staticmethod
    def _features(out) -> torch.Tensor:
        # transformers 5 returns a model output whose pooler_output is the projected embedding
        return getattr(out, "pooler_output", out)

    @torch.no_grad()
    def image_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings ``[batch, D]`` (float32) of images in [0, 1]."""
        return self._last_batch.get(images, self._embed_images)

    def _embed_images(self, images: torch.Tensor) -> torch.Tensor:
        pixels = self.processor(images=images.float(), do_rescale=False, return_tensors="pt")[
            "pixel_values"
        ]
        out = self.model.get_image_features(pixel_values=pixels.to(self.device, self.dtype))
        return F.normalize(self._features(out).float(), dim=-1)

    @torch.no_grad()
    def text_embeddings(self, texts: list[str]) -> torch.Tensor:
        """L2-normalised text embeddings ``[batch, D]`` (float32); texts cut at the token limit."""
        tokens = self.processor(
            text=list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)
        out = self.model.get_text_features(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        )
        return F.normalize(self._features(out).float(), dim=-1)
