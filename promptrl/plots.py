"""Pictures of a run: captioned image grids and the training report."""

from __future__ import annotations

import textwrap
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .errors import UsageError


def image_grid(images: list[Image.Image], captions: list[str], cols: int = 4, tile: int = 192) -> Image.Image:
    """A grid of `tile`-pixel images, each with its caption (wrapped) underneath."""
    if not images:
        raise UsageError("image_grid needs at least one image.")
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
    """One panel per reward component (mean +- std), then KL and its coefficient, per step;
    with held-out judges, a last panel puts them beside the training reward.

    Draws on a standalone Agg figure, so a Jupyter kernel's plotting backend is left alone.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps = [h["step"] for h in history]
    names = sorted(
        {
            k[len("reward/") : -len("/mean")]
            for h in history
            for k in h
            if k.startswith("reward/") and k.endswith("/mean")
        },
        key=lambda n: (n != "total", n),
    )
    judges = sorted({k for h in history for k in h if k.startswith("judge/") and k.endswith("/mean")})
    panels = len(names) + 2 + bool(judges)
    fig = Figure(figsize=(4 * panels, 3.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    for ax, name in zip(axes, names):
        mean = [h.get(f"reward/{name}/mean", float("nan")) for h in history]
        std = [h.get(f"reward/{name}/std", 0.0) for h in history]
        ax.plot(steps, mean, color="tab:blue")
        ax.fill_between(steps, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)], alpha=0.2)
        ax.set_title(f"reward: {name} (mean ± std)")
    kl_ax, coef_ax = axes[len(names)], axes[len(names) + 1]
    kl_ax.plot(steps, [h.get("objective/kl", float("nan")) for h in history], color="tab:red")
    kl_ax.set_title("KL to the reference (nats / prompt)")
    coef_ax.plot(steps, [h.get("objective/kl_coef", float("nan")) for h in history], color="tab:purple")
    coef_ax.set_title("KL coefficient")
    if judges:
        _judge_panel(axes[-1], history, judges)
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def _judge_panel(ax, history: list[dict], judges: list[str]) -> None:
    """Training reward (left axis, every step) and held-out judges (right axis, at the steps
    they ran): a reward that climbs while the judges stay flat is being gamed."""
    steps = [h["step"] for h in history]
    ax.plot(
        steps,
        [h.get("reward/total/mean", float("nan")) for h in history],
        color="tab:blue",
        alpha=0.6,
        label="reward, training ideas",
    )
    heldout = [h for h in history if "heldout/total/mean" in h]
    ax.plot(
        [h["step"] for h in heldout],
        [h["heldout/total/mean"] for h in heldout],
        "s--",
        color="tab:blue",
        label="reward, held-out ideas",
    )
    ax.set_ylabel("training reward", color="tab:blue")
    ax.legend(loc="upper left", fontsize=8)
    right = ax.twinx()
    for key, color in zip(judges, ("tab:green", "tab:orange", "tab:brown", "tab:pink")):
        rows = [h for h in history if key in h]
        right.plot(
            [h["step"] for h in rows],
            [h[key] for h in rows],
            "o-",
            color=color,
            label=key[len("judge/") : -len("/mean")],
        )
    right.set_ylabel("held-out judge")
    right.legend(loc="lower right", fontsize=8)
    ax.set_title("training reward vs held-out judge")


def write_before_after(before: list[dict], after: list[dict], table: Path, grid: Path) -> None:
    """The same ideas sampled (with the same seeds) before and after training: a markdown table
    of prompts and rewards at `table` and a two-column captioned grid at `grid`. Each sample is
    `{"idea", "prompt", "reward", "image"}`."""
    lines = ["| idea | before | reward | after | reward |", "|---|---|---|---|---|"]
    for b, a in zip(before, after):
        lines.append(f"| {b['idea']} | {b['prompt']} | {b['reward']:.3f} | {a['prompt']} | {a['reward']:.3f} |")
    Path(table).write_text("\n".join(lines) + "\n")
    pairs = list(zip(before, after))
    pics = [x["image"] for pair in pairs for x in pair]
    caps = [f"{tag} {x['reward']:.3f} | {x['prompt']}" for pair in pairs for tag, x in zip(("before", "after"), pair)]
    image_grid(pics, caps, cols=2).save(grid)
