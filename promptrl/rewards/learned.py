"""A reward learned from one person's choices: `{type: preference, path: DIR}`.

`promptrl prefs fit` writes DIR: `head.safetensors` (the weights) and `head.json` (the
embedding model, the sizes, how many pairs it saw and its held-out accuracy). Nothing here is
unpickled. The head scores an image from its CLIP embedding `x` and its idea's text embedding
`t` (both L2-normalised) as `head([x, x * t])`: the image alone, and how the image sits with
the idea. A Bradley-Terry model: P(A beats B) = sigmoid(score(A) - score(B)).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..errors import NotFoundError, UsageError
from ..paths import write_dir_atomically
from .embedders import ClipModel

HEAD_WEIGHTS = "head.safetensors"
HEAD_INFO = "head.json"
FORMAT = "promptrl-preference-head/1"


class PreferenceHead(nn.Module):
    """Linear (`hidden == 0`) or one-hidden-layer MLP score over `[image, image * idea]`."""

    def __init__(self, embed_dim: int, hidden: int = 0):
        super().__init__()
        self.embed_dim, self.hidden = embed_dim, hidden
        inputs = 2 * embed_dim
        if hidden:
            self.net = nn.Sequential(nn.Linear(inputs, hidden), nn.GELU(), nn.Linear(hidden, 1))
        else:
            self.net = nn.Linear(inputs, 1)

    @staticmethod
    def features(images: torch.Tensor, ideas: torch.Tensor) -> torch.Tensor:
        return torch.cat([images, images * ideas], dim=-1)

    def forward(self, images: torch.Tensor, ideas: torch.Tensor) -> torch.Tensor:
        return self.net(self.features(images, ideas)).squeeze(-1)


def save_head(path: str | Path, head: PreferenceHead, info: dict) -> Path:
    """Write `head.safetensors` and `head.json` as the folder `path`, replacing it whole."""
    from safetensors.torch import save_file

    full = {"format": FORMAT, "embed_dim": head.embed_dim, "hidden": head.hidden, **info}
    weights = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}

    def write(tmp: Path) -> None:
        save_file(weights, str(tmp / HEAD_WEIGHTS))
        (tmp / HEAD_INFO).write_text(json.dumps(full, indent=2, sort_keys=True), encoding="utf-8")

    # Both files or neither: a reader (the app's Rate tab) never sees half a head.
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return write_dir_atomically(path, write)


def load_head(path: str | Path) -> tuple[PreferenceHead, dict]:
    """The head and its info from a folder `save_head` wrote; a clear error for anything else."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(path)
    weights, info_file = folder / HEAD_WEIGHTS, folder / HEAD_INFO
    if not weights.is_file() or not info_file.is_file():
        raise NotFoundError(
            f"preference reward {str(folder)!r} has no {HEAD_WEIGHTS} and {HEAD_INFO}: "
            "write one with `promptrl prefs fit --out DIR`."
        )
    try:
        info = json.loads(info_file.read_text(encoding="utf-8"))
        if info.get("format") != FORMAT:
            raise ValueError(f"format {info.get('format')!r}, expected {FORMAT!r}")
        head = PreferenceHead(int(info["embed_dim"]), int(info["hidden"]))
        head.load_state_dict(load_file(str(weights)))
    except (ValueError, KeyError, RuntimeError, TypeError, OSError, SafetensorError) as err:
        raise UsageError(f"preference reward {str(folder)!r} is not a valid head: {err}") from err
    return head.eval(), info


class LearnedPreferenceReward:
    """The score a fitted head gives each image for its idea (higher: more to the rater's taste)."""

    def __init__(self, path: str | Path, device=None, dtype=None):
        self.head, self.info = load_head(path)
        self.clip = ClipModel.shared(self.info["clip_model"], self.info.get("clip_pretrained"), device, dtype)
        self.head.to(self.clip.device)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, prompts: list[str], ideas: list[str]) -> torch.Tensor:
        x = self.clip.image_embeddings(images)
        t = self.clip.text_embeddings(list(ideas))
        return self.head(x, t).float().cpu()
