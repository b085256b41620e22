"""Fit a person's choices: Bradley-Terry on frozen CLIP embeddings, with k-fold held-out accuracy.

Each pair gives the image embeddings `xa`, `xb` and the idea's text embedding `t` (the run's
open_clip model, frozen). The head (rewards/learned.py) scores `s(x, t)`; the model says
P(A chosen) = sigmoid(s(xa, t) - s(xb, t)). A tie is the target 0.5 (it counts half); "both
bad" and skipped pairs carry no preference between the two and are left out. Weight decay
(AdamW, full batch) keeps a few hundred pairs from being memorised. The pairs of one
best-of-four choice share its best image, so they fall in one fold together: held out, they
are held out whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UsageError
from ..rewards.embedders import ClipModel
from ..rewards.learned import PreferenceHead, save_head
from .store import Choice, PreferenceStore

TARGETS = {"a": 1.0, "b": 0.0, "tie": 0.5}
MIN_PAIRS = 10


@dataclass
class Pairs:
    """Embedded pairs: `xa`, `xb`, `t` are `[n, D]`, `y` the target P(A chosen), `groups` `[n]`
    the choice each pair came from (equal for the pairs of one best-of-four)."""

    xa: torch.Tensor
    xb: torch.Tensor
    t: torch.Tensor
    y: torch.Tensor
    groups: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def take(self, idx) -> Pairs:
        return Pairs(self.xa[idx], self.xb[idx], self.t[idx], self.y[idx], self.groups[idx])


def embed_pairs(store: PreferenceStore, choices: list[Choice], clip: ClipModel, batch: int = 32) -> Pairs:
    """The CLIP embeddings of each usable choice's images and idea."""
    usable = [c for c in choices if c.choice in TARGETS]
    if len(usable) < MIN_PAIRS:
        raise UsageError(f"{len(usable)} usable choices (a, b or tie); rate at least {MIN_PAIRS} pairs before fitting")

    def images(digests: list[str]) -> torch.Tensor:
        out = []
        for i in range(0, len(digests), batch):
            arrays = [np.asarray(store.load_image(d), dtype=np.float32) / 255 for d in digests[i : i + batch]]
            size = arrays[0].shape[:2]
            if any(a.shape[:2] != size for a in arrays):
                out += [clip.image_embeddings(torch.from_numpy(a).permute(2, 0, 1)[None]) for a in arrays]
            else:
                out.append(clip.image_embeddings(torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)))
        return torch.cat(out).cpu()

    xa = images([c.image_a for c in usable])
    xb = images([c.image_b for c in usable])
    t = clip.text_embeddings([c.idea for c in usable]).cpu()
    y = torch.tensor([TARGETS[c.choice] for c in usable])
    keys = [c.round_id or f"row {i}" for i, c in enumerate(usable)]
    index = {key: n for n, key in enumerate(dict.fromkeys(keys))}
    return Pairs(xa, xb, t, y, torch.tensor([index[key] for key in keys]))


def train_head(
    pairs: Pairs, hidden: int = 0, weight_decay: float = 1e-2, steps: int = 300, lr: float = 0.05, seed: int = 0
):
    """A head fitted to `pairs` (full-batch AdamW)."""
    torch.manual_seed(seed)
    head = PreferenceHead(pairs.xa.shape[1], hidden)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    # the embeddings are unit vectors whose differences are small: standardise the feature scale
    for _ in range(steps):
        opt.zero_grad()
        logits = head(pairs.xa, pairs.t) - head(pairs.xb, pairs.t)
        F.binary_cross_entropy_with_logits(logits, pairs.y).backward()
        opt.step()
    return head.eval()


@torch.no_grad()
def predict(head: PreferenceHead, pairs: Pairs) -> torch.Tensor:
    """P(A chosen) for each pair."""
    return torch.sigmoid(head(pairs.xa, pairs.t) - head(pairs.xb, pairs.t))


def wilson(correct: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson interval of a proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def folds(groups: torch.Tensor, k: int, seed: int = 0) -> torch.Tensor:
    """Each pair's fold (`[n]`, in 0..k-1): groups shuffled with `seed`, dealt out in turn, every
    pair of a group in its group's fold. With as many groups as pairs, a shuffle of the pairs."""
    _, group = torch.unique(groups, return_inverse=True)
    n_groups = int(group.max()) + 1
    k = max(2, min(k, n_groups))
    order = torch.randperm(n_groups, generator=torch.Generator().manual_seed(seed))
    fold_of = torch.empty(n_groups, dtype=torch.long)
    fold_of[order] = torch.arange(n_groups) % k
    return fold_of[group]


def kfold(pairs: Pairs, k: int = 5, seed: int = 0, **train) -> dict:
    """Held-out accuracy (ties left out of it), its 95% interval, log-loss (ties included) and
    the held-out predictions, over `k` folds of whole groups (`Pairs.groups`)."""
    n = len(pairs)
    fold_of = folds(pairs.groups, k, seed)
    probs = torch.empty(n)
    for fold in range(int(fold_of.max()) + 1):
        test = (fold_of == fold).nonzero().squeeze(1)
        head = train_head(pairs.take((fold_of != fold).nonzero().squeeze(1)), **train)
        probs[test] = predict(head, pairs.take(test))
    decided = pairs.y != 0.5
    correct = ((probs > 0.5).float() == pairs.y)[decided].float().sum().item()
    m = int(decided.sum())
    loss = F.binary_cross_entropy(probs.clamp(1e-6, 1 - 1e-6), pairs.y).item()
    return {
        "accuracy": correct / m if m else float("nan"),
        "interval": wilson(correct, m),
        "log_loss": loss,
        "pairs": n,
        "probs": probs,
    }


def learning_curve(pairs: Pairs, sizes: list[int], k: int = 5, **train) -> list[tuple[int, float]]:
    """Held-out accuracy when fitting on the first `n` pairs, for each `n` in `sizes`."""
    return [(n, kfold(pairs.take(torch.arange(n)), k, **train)["accuracy"]) for n in sizes if n <= len(pairs)]


def plot_fit(result: dict, y: torch.Tensor, curve: list[tuple[int, float]], path: Path) -> None:
    """Calibration (predicted vs observed, in deciles) and the learning curve, side by side."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.6))
    FigureCanvasAgg(fig)
    cal, lc = fig.subplots(1, 2)
    probs = result["probs"].numpy()
    bins = np.clip((probs * 10).astype(int), 0, 9)
    xs = [probs[bins == b].mean() for b in range(10) if (bins == b).any()]
    ys = [y.numpy()[bins == b].mean() for b in range(10) if (bins == b).any()]
    cal.plot([0, 1], [0, 1], "k--", lw=0.8)
    cal.plot(xs, ys, "o-")
    cal.set(xlabel="predicted P(A chosen)", ylabel="observed", title="calibration (held out)")
    if curve:
        lc.plot([n for n, _ in curve], [a for _, a in curve], "o-")
    lc.set(xlabel="pairs", ylabel="held-out accuracy", title="learning curve", ylim=(0.4, 1.0))
    fig.tight_layout()
    fig.savefig(path)


def fit_preferences(
    store: PreferenceStore,
    out_dir: str | Path,
    clip_model: str,
    clip_pretrained: str | None,
    rater: str | None = None,
    hidden: int = 0,
    weight_decay: float = 1e-2,
    k: int = 5,
    device=None,
) -> dict:
    """Fit `rater`'s choices (everyone's when None), report k-fold accuracy, save the head fitted
    on all pairs with its info and `fit.png` into `out_dir`. Returns the info."""
    clip = ClipModel.shared(clip_model, clip_pretrained, device)
    pairs = embed_pairs(store, store.choices(rater), clip)
    train = {"hidden": hidden, "weight_decay": weight_decay}
    result = kfold(pairs, k, **train)
    sizes = sorted({n for n in (MIN_PAIRS * 2, 50, 100, 200, 400, 800, len(pairs)) if n <= len(pairs)})
    curve = learning_curve(pairs, sizes, k, **train)
    head = train_head(pairs, **train)
    info = {
        "clip_model": clip_model,
        "clip_pretrained": clip_pretrained,
        "pairs": len(pairs),
        "rater": rater,
        "accuracy": result["accuracy"],
        "accuracy_95": list(result["interval"]),
        "log_loss": result["log_loss"],
        "folds": k,
        "weight_decay": weight_decay,
        "learning_curve": curve,
    }
    out = save_head(out_dir, head, info)
    plot_fit(result, pairs.y, curve, out / "fit.png")
    return info
