"""Every image family served in the app's Render tab, driven through `gradio_client` as a
visitor would, and a render option the family cannot take refused in one line by both the app's
and the trainer's command lines (no traceback), on the stand-in hub's tiny pipelines."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from promptrl.standins.families import FAMILIES, FAMILY_REPOS, build_family_hub  # noqa: E402
from promptrl.standins.hub import standin_env  # noqa: E402
from promptrl.standins.hubcache import repo_dir  # noqa: E402

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
RENDER = ["render.height=64", "render.width=64", "render.num_inference_steps=1", "render.guidance_scale=0"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    return build_family_hub(tmp_path_factory.getbasetemp() / "family-hub", FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_serves_in_the_render_tab(hub, family, tmp_path, free_port, one_thread):
    from gradio_client import Client

    from promptrl.app import build_app, serve

    local = str(repo_dir(hub / "hub", FAMILY_REPOS[family]))
    demo = build_app("tiny", overrides=[f"render.pipeline={local}", *RENDER], runs_dir=tmp_path, device="cpu")
    assert (
        type(demo.models.renderer().pipeline).__name__
        == {
            "sdxl": "StableDiffusionXLPipeline",
            "sd3": "StableDiffusion3Pipeline",
            "flux": "FluxPipeline",
            "pixart": "PixArtSigmaPipeline",
            "sana": "SanaPipeline",
        }[family]
    )
    port = free_port()
    serve(demo, "127.0.0.1", port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        table, _, _, _, status = client.predict("a lighthouse in a storm", 1, 1.0, 1.0, 8, 0, api_name="/generate")
        tuned, start, scores, status = client.predict(table, "", 0, 1.0, 1.0, 0.5, api_name="/render")
    finally:
        demo.close()
    assert len(tuned) == len(start) == 1, status
    assert status.startswith("Rendered 1 row(s)"), status
    assert all(Path(item["image"]).is_file() for item in tuned + start)
    assert [row[1] for row in scores["data"]] == ["fine-tuned", "starting"]


def run(args: list[str], hub: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        env={**os.environ, **standin_env(hub)},
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )


@pytest.mark.parametrize("program", ["app", "train"])
def test_an_option_the_family_cannot_take_is_one_line_in_the_app_and_the_cli(hub, program, tmp_path):
    """FLUX.1 takes no negative prompt: refused by its hub name before the app serves or a run starts."""
    bad = [
        f"render.pipeline={FAMILY_REPOS['flux']}",
        *RENDER,
        "render.guidance_scale=2",
        "render.negative_prompt=blurry",
    ]
    args = [a for o in bad for a in ("--set", o)]
    if program == "app":
        argv = ["app.py", "--preset", "tiny", "--device", "cpu", "--runs-dir", str(tmp_path / "runs"), *args]
    else:
        argv = ["-m", "promptrl", "train", "--preset", "tiny", "--output-dir", str(tmp_path / "run"), *args]
    proc = run(argv, hub)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in lines if "render.negative_prompt" in line]
    assert len(errors) == 1 and "FLUX.1" in errors[0], proc.stderr[-2000:]
