"""Human-preference rewards: models trained on which of two images people prefer for a prompt.

- `PickScoreReward`: PickScore (Kirstain et al. 2023), a transformers CLIP ViT-H/14 fine-tuned
  on Pick-a-Pic choices;
- `HPSReward`: HPSv2.1 (Wu et al. 2023), an open_clip ViT-H-14 fine-tuned on HPD v2 rankings.

Both compare the image with the idea by default, which makes them good judges: a generator
cannot game them by writing text that merely matches its own image.
"""

from __future__ import annotations

import torch

from ..errors import UsageError
from .clip import ClipSimilarityReward, resolve_file
from .embedders import ClipModel, TransformersClip

# PickScore (Kirstain et al. 2023): CLIP ViT-H/14 fine-tuned on Pick-a-Pic human choices; it
# uses the processor of the LAION ViT-H/14 it started from.
PICKSCORE_MODEL = "yuvalkirstain/PickScore_v1"
PICKSCORE_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
# HPSv2.1 (Wu et al. 2023): open_clip ViT-H-14 fine-tuned on HPD v2 human rankings.
HPS_MODEL = "ViT-H-14"
HPS_WEIGHTS = "hf://xswu/HPSv2/HPS_v2.1_compressed.pt"


class PickScoreReward:
    """PickScore: `logit_scale * cos(image, text)` in the PickScore CLIP space (about 18-23
    for real images; higher is preferred by people). The text is the idea by default: the
    judge then asks whether the image is a good picture *of what the user asked for*, which
    a generator cannot game by writing text that merely matches its own image."""

    def __init__(
        self,
        clip: TransformersClip | None = None,
        against: str = "idea",
        model: str = PICKSCORE_MODEL,
        processor: str | None = PICKSCORE_PROCESSOR,
        device=None,
        dtype=None,
    ):
        if against not in ("idea", "prompt"):
            raise UsageError(f"against must be 'idea' or 'prompt', got {against!r}")
        self.clip = clip if clip is not None else TransformersClip.shared(model, processor, device, dtype)
        self.against = against

    def __call__(self, images: torch.Tensor, prompts: list[str], ideas: list[str]) -> torch.Tensor:
        """PickScore per image, `[batch]`."""
        texts = ideas if self.against == "idea" else prompts
        sim = (self.clip.image_embeddings(images) * self.clip.text_embeddings(texts)).sum(-1)
        return self.clip.model.logit_scale.exp().float() * sim


class HPSReward(ClipSimilarityReward):
    """HPSv2.1: cosine similarity of image and text in an open_clip ViT-H-14 fine-tuned on
    human preference rankings (about 0.25-0.35 for real images). The checkpoint is read with
    `torch.load(weights_only=True)` by open_clip; the text is the idea by default (see
    `PickScoreReward`)."""

    def __init__(
        self,
        clip: ClipModel | None = None,
        against: str = "idea",
        model: str = HPS_MODEL,
        weights: str = HPS_WEIGHTS,
        device=None,
        dtype=None,
    ):
        super().__init__(clip if clip is not None else hps_clip(model, weights, device, dtype), against=against)


def hps_clip(model: str = HPS_MODEL, weights: str = HPS_WEIGHTS, device=None, dtype=None) -> ClipModel:
    """The shared open_clip `model` with an HPS checkpoint (`.pt` of `{"state_dict": ...}`
    or safetensors); a checkpoint that holds anything but tensors is refused, not unpickled."""
    import pickle

    path = resolve_file(weights)
    try:
        return ClipModel.shared(model, path, device, dtype)
    except pickle.UnpicklingError as e:
        raise UsageError(
            f"{weights}: holds Python objects besides tensors and will not be unpickled; "
            "pass a plain state dict (torch.save of tensors only, or safetensors)"
        ) from e
