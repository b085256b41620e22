"""Pictures of a run (plots.py): captioned image grids and the training report."""

from __future__ import annotations

import pytest
from PIL import Image

from promptrl.plots import image_grid, plot_report

CAPTION_H = 5 * 12 + 4  # five lines of 12 pixels, plus a margin


def test_image_grid_size_tiles_and_captions():
    red, white = (255, 0, 0), (255, 255, 255)
    grid = image_grid([Image.new("RGB", (10, 20), red)] * 5, ["a cat"] + [""] * 4, cols=4, tile=64)
    assert grid.size == (4 * 64, 2 * (64 + CAPTION_H))  # five images: two rows of four
    assert grid.getpixel((32, 32)) == red  # each image resized into its tile
    assert grid.getpixel((3 * 64 + 32, 64 + CAPTION_H + 32)) == white  # the eighth tile is empty

    def ink(x0: int, y0: int) -> int:
        box = grid.crop((x0, y0, x0 + 64, y0 + CAPTION_H)).convert("L")
        return sum(1 for v in box.getdata() if v < 128)

    assert ink(0, 64) > 0  # the first caption is drawn under its image
    assert ink(64, 64) == 0  # the second image has an empty caption


def test_image_grid_narrows_to_the_images_and_needs_one():
    grid = image_grid([Image.new("RGB", (8, 8))] * 2, ["x", "y"], cols=4, tile=16)
    assert grid.size == (2 * 16, 16 + CAPTION_H)
    with pytest.raises(ValueError, match="at least one image"):
        image_grid([], [])


def test_plot_report_writes_a_png_from_a_history_with_gaps(tmp_path):
    history = [
        {
            "step": 1,
            "reward/total/mean": 1.0,
            "reward/total/std": 0.1,
            "reward/aesthetic/mean": 2.0,
            "objective/kl": 0.0,
            "objective/kl_coef": 0.2,
        },
        {"step": 2, "reward/total/mean": 1.5, "reward/aesthetic/mean": 2.5},  # no std, no KL
        {
            "step": 3,
            "reward/total/mean": 2.0,
            "reward/total/std": 0.2,
            "objective/kl": 0.5,
            "objective/kl_coef": 0.19,
            "judge/pickscore/mean": 0.6,
            "heldout/total/mean": 1.7,
        },
    ]
    path = tmp_path / "report.png"
    plot_report(history, path)
    with Image.open(path) as image:
        assert image.format == "PNG"
        # panels: total, aesthetic, KL, KL coefficient, judge = 5, each 4 x 3.6 inches at 90 dpi
        assert image.size == (5 * 4 * 90, round(3.6 * 90))
    plot_report([h for h in history if "judge/pickscore/mean" not in h], path)  # no judge: no judge panel
    with Image.open(path) as image:
        assert image.size == (4 * 4 * 90, round(3.6 * 90))
