"""The CLIP rewards: the LAION aesthetic predictor on CLIP image embeddings
(`AestheticReward`) and image-idea similarity in CLIP space (`ClipSimilarityReward`).

Both take an `embedders.ClipModel`; by default the shared OpenAI ViT-L/14 the real aesthetic
predictor was trained on, so the two rewards run one image forward per batch between them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import NotFoundError, UsageError
from .embedders import ClipModel

# The LAION "improved aesthetic predictor" (christophschuhmann/improved-aesthetic-predictor),
# trained on L2-normalised OpenAI CLIP ViT-L/14 image embeddings; scores are roughly 1-10.
AESTHETIC_WEIGHTS = "hf://camenduru/improved-aesthetic-predictor/sac+logos+ava1-l14-linearMSE.pth"
AESTHETIC_CLIP = ("ViT-L-14", "openai")


class AestheticMLP(nn.Module):
    """The LAION improved aesthetic predictor head (state-dict keys `layers.{0,2,4,6,7}`)."""

    def __init__(self, input_dim: int = 768):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(input_dim, 1024),
            nn.Dropout(0.2),
            nn.Linear(1024, 128),
            nn.Dropout(0.2),
            nn.Linear(128, 64),
            nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """`[batch, D]` normalised CLIP embeddings -> `[batch, 1]` scores."""
        return self.layers(embeddings)


def resolve_file(path: str) -> str:
    """A local path as is; `hf://repo_id/filename` downloaded (or found in the HF cache)."""
    if path.startswith("hf://"):
        from huggingface_hub import hf_hub_download

        owner, repo, filename = path[len("hf://") :].split("/", 2)
        try:
            return hf_hub_download(f"{owner}/{repo}", filename)
        except Exception as e:
            raise NotFoundError(
                f"could not fetch {path} from the Hugging Face Hub ({type(e).__name__}: {e}); "
                "download the file and pass its local path instead"
            ) from e
    if not Path(path).is_file():
        raise NotFoundError(f"weights file not found: {path}")
    return path


def load_state_dict(path: str) -> dict[str, torch.Tensor]:
    """A state dict from a `.safetensors` or `.pth` file, or an `hf://repo/file`."""
    path = resolve_file(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


class AestheticReward:
    """LAION improved aesthetic predictor: an MLP on L2-normalised CLIP image embeddings.

    `weights` is a `.pth`/`.safetensors` state dict or `hf://repo_id/filename`;
    the default is the real predictor, which needs CLIP ViT-L/14 (openai). The CLIP model
    defaults to that one, shared with other rewards on the same device.
    """

    def __init__(
        self,
        clip: ClipModel | None = None,
        weights: str | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
    ):
        state = load_state_dict(weights or AESTHETIC_WEIGHTS)
        if "layers.0.weight" not in state:
            raise UsageError(
                f"{weights}: not an aesthetic predictor state dict (keys layers.0.* ... "
                f"layers.7.*); found keys {sorted(state)[:6]}"
            )
        self.clip = clip if clip is not None else ClipModel.shared(*AESTHETIC_CLIP, device, dtype)
        input_dim = state["layers.0.weight"].shape[1]
        if input_dim != self.clip.embed_dim:
            raise UsageError(
                f"aesthetic weights take {input_dim}-dim embeddings but CLIP "
                f"{self.clip.model_name} gives {self.clip.embed_dim}-dim ones"
            )
        self.mlp = AestheticMLP(input_dim)
        self.mlp.load_state_dict(state)
        self.mlp.to(self.clip.device).eval()

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, prompts: list[str], ideas: list[str]) -> torch.Tensor:
        """Aesthetic score per image, `[batch]`."""
        return self.mlp(self.clip.image_embeddings(images))[:, 0]


class ClipSimilarityReward:
    """Cosine similarity between each image and its idea (or prompt) in CLIP space.

    With `hinge`, reward = min(similarity, hinge): once an image is on topic, being more
    on topic earns nothing, so the policy is free to chase the other rewards.
    """

    def __init__(
        self,
        clip: ClipModel | None = None,
        hinge: float | None = None,
        scale: float = 1.0,
        against: str = "idea",
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
    ):
        if against not in ("idea", "prompt"):
            raise UsageError(f"against must be 'idea' or 'prompt', got {against!r}")
        self.clip = clip if clip is not None else ClipModel.shared(*AESTHETIC_CLIP, device, dtype)
        self.hinge, self.scale, self.against = hinge, scale, against

    def __call__(self, images: torch.Tensor, prompts: list[str], ideas: list[str]) -> torch.Tensor:
        """`scale * min(cos(image, text), hinge)` per image, `[batch]`."""
        texts = ideas if self.against == "idea" else prompts
        sim = (self.clip.image_embeddings(images) * self.clip.text_embeddings(texts)).sum(-1)
        if self.hinge is not None:
            sim = sim.clamp(max=self.hinge)
        return self.scale * sim
