"""Pictures of a run: captioned image grids and the training report."""

from __future__ import annotations

import textwrap
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont


def image_grid(images: list[Image.Image], captions: list[str], cols: int = 4, tile: int = 192) -> Image.Image:
    """A grid of `tile`-pixel images, each with its caption (wrapped) underneath."""
    if not images:
        raise ValueError("image_grid needs at least one image.")
    font = ImageFont.load_default()
    lines_per_caption = 5
    line_h = 12
    cap_h = lines_per_caption * line_h + 4
    cols = min(cols, len(images))
    rows = (len(images) + cols - 1) // cols
    grid = Image.new("RGB", (cols * tile, rows * (tile + cap_h)), "white")
    draw = ImageDraw.Draw(grid)
    width_chars = max(10, tile // 6)
    for i, (img, caption) in enumerate(zip(images, captions)):
        x, y = (i % cols) * tile, (i // cols) * (tile + cap_h)
        grid.paste(img.convert("RGB").resize((tile, tile)), (x, y))
        lines = textwrap.wrap(caption, width_chars)[:lines_per_caption]
        for j, line in enumerate(lines):
            draw.text((x + 2, y + tile + 2 + j * line_h), line, fill="black", font=font)
    return grid


def plot_report(history: list[dict], path: str | Path) -> None:
    """reward/mean +- std per component, KL and its coefficient, over the steps of a run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    components = sorted({k[len("reward/"):-len("/mean")] for h in history for k in h
                         if k.startswith("reward/") and k.endswith("/mean")})
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for name in components:
        mean = [h.get(f"reward/{name}/mean", float("nan")) for h in history]
        std = [h.get(f"reward/{name}/std", 0.0) for h in history]
        axes[0].plot(steps, mean, label=name)
        axes[0].fill_between(steps, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)], alpha=0.15)
    axes[0].set_title("reward (mean ± std)")
    axes[0].legend(fontsize=8)
    axes[1].plot(steps, [h.get("objective/kl", float("nan")) for h in history], color="tab:red")
    axes[1].set_title("KL to the reference (nats / prompt)")
    axes[2].plot(steps, [h.get("objective/kl_coef", float("nan")) for h in history], color="tab:purple")
    axes[2].set_title("KL coefficient")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
