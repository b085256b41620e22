"""The path a Colab user takes, against an offline stand-in hub (promptrl/standins/hub.py).

Every command here names the real repositories (`bigscience/bloom-560m`, `gpt2`,
`stabilityai/sd-turbo`, open_clip's `ViT-L-14`/`openai`, the aesthetic predictor's `hf://`
file) and runs in a fresh process with `HF_HOME` on the stand-in hub and `HF_HUB_OFFLINE=1`,
so the libraries resolve them through their own hub-cache code, as on Colab. Only sizes are
overridden (two samples, 64x64 images, one step).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from promptrl.rundir import LOG_FILE
from promptrl.standins.hub import standin_env

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SMALL_RUN = [
    "ppo.batch_size=2",
    "ppo.mini_batch_size=2",
    "ppo.forward_batch_size=2",
    "samples_per_idea=2",
    "steps=1",
    "generation.max_new_tokens=8",
    "render.height=64",
    "render.width=64",
    "eval_ideas=1",
    "eval.heldout=2",
    "eval.samples=1",
    "save_every=1",
    "image_every=1",
    "trackers=[]",
    "progress=false",
]


def env_for(hub: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, **standin_env(hub), "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def run(hub: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python *args` in a fresh process that sees only the stand-in hub."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env_for(hub),
        capture_output=True,
        text=True,
        timeout=600,
    )


def cli(hub: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = run(hub, "-m", "promptrl", *args, cwd=cwd)
    assert proc.returncode == 0, f"promptrl {' '.join(args)} failed:\n{proc.stderr[-4000:]}"
    return proc


def sets(pairs: list[str]) -> list[str]:
    return [arg for pair in pairs for arg in ("--set", pair)]


def train(hub: Path, preset: str, out: Path) -> tuple[Path, subprocess.CompletedProcess]:
    proc = cli(
        hub,
        "train",
        "--preset",
        preset,
        *sets(SMALL_RUN),
        "--output-dir",
        str(out / "run"),
        cwd=out,
    )
    return out / "run", proc


def check_run(run_dir: Path, proc: subprocess.CompletedProcess) -> None:
    assert "Trained 1 steps" in proc.stdout
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1
    for key in (
        "reward/total/mean",
        "reward/aesthetic/mean",
        "reward/similarity/mean",
        "reward/penalty/mean",
        "objective/kl",
        "ppo/loss/policy",
        "ppo/loss/value",
    ):
        assert math.isfinite(rows[0][key]), (key, rows[0][key])
    for name in (
        "checkpoint-000001",
        "images/step_000001.png",
        "report.png",
        "before_after.png",
        "samples.md",
    ):
        assert (run_dir / name).exists(), name
    # open_clip only warns when the OpenAI weights run with the wrong activation; library
    # warnings go to the run's log, not the console.
    log = (run_dir / LOG_FILE).read_text()
    assert log.strip(), "the run's log holds the libraries' messages"
    assert "QuickGELU mismatch" not in proc.stderr + log


@pytest.fixture(scope="module")
def bloom_run(standin_hub, tmp_path_factory):
    """(run dir, process) of `promptrl train --preset bloom-560m` with small overrides."""
    return train(standin_hub, "bloom-560m", tmp_path_factory.mktemp("bloom"))


def test_hub_names_load_as_users_get_them(standin_hub, tmp_path):
    """The stand-in hub's files load through the hub names, and the loaded objects are what
    training needs: a fp32 policy (bloom-560m is stored in fp16), QuickGELU in OpenAI's
    ViT-L-14, sd-turbo's scheduler and tokenizer, the pickled aesthetic .pth."""
    code = """
import json, torch, open_clip
from transformers import AutoTokenizer
from promptrl.ppo import ValueHeadModel
from promptrl.rendering import load_pipeline
from promptrl.rewards import AestheticReward, ClipModel
policy = ValueHeadModel.from_pretrained("bigscience/bloom-560m")
tok = AutoTokenizer.from_pretrained("bigscience/bloom-560m")
clip = ClipModel("ViT-L-14", "openai", device="cpu")
aesthetic = AestheticReward(clip)
half = load_pipeline("stabilityai/sd-turbo", torch.float16)
pipe = load_pipeline("stabilityai/sd-turbo", torch.float32)
print("FACTS", json.dumps({
    "policy_dtype": str(next(policy.pretrained_model.parameters()).dtype),
    "padding_side": tok.padding_side, "special": [tok.unk_token_id, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id],
    "quick_gelu": isinstance(clip.model.visual.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU),
    "embed_dim": clip.embed_dim, "aesthetic_in": aesthetic.mlp.layers[0].in_features,
    "pipeline": type(pipe).__name__, "unet_dtypes": [str(half.unet.dtype), str(pipe.unet.dtype)],
    "scheduler": [type(pipe.scheduler).__name__, pipe.scheduler.config.timestep_spacing, pipe.scheduler.config.steps_offset],
    "sd_pad": pipe.tokenizer.pad_token, "safety_checker": pipe.safety_checker,
}))
"""
    proc = run(standin_hub, "-c", code, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    facts = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("FACTS "))[6:])
    assert facts == {
        "policy_dtype": "torch.float32",
        "padding_side": "left",
        "special": [0, 1, 2, 3],
        "quick_gelu": True,
        "embed_dim": 768,
        "aesthetic_in": 768,
        "pipeline": "StableDiffusionPipeline",
        "unet_dtypes": ["torch.float16", "torch.float32"],
        "scheduler": ["EulerDiscreteScheduler", "trailing", 1],
        "sd_pad": "!",
        "safety_checker": None,
    }


def test_train_bloom_560m_preset_with_lora(bloom_run):
    run_dir, proc = bloom_run
    check_run(run_dir, proc)
    adapter = json.loads((run_dir / "model" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "bigscience/bloom-560m"
    assert set(adapter["target_modules"]) == {"query_key_value"}  # peft's default for BLOOM's fused attention
    assert json.loads((run_dir / "model" / "promptrl.json").read_text())["start_model"] == "bigscience/bloom-560m"


def test_train_gpt2_preset(standin_hub, tmp_path):
    run_dir, proc = train(standin_hub, "gpt2", tmp_path)
    check_run(run_dir, proc)
    assert (run_dir / "model" / "model.safetensors").exists()  # full fine-tune, no adapter
    assert not (run_dir / "model" / "adapter_config.json").exists()


def test_generate_render_and_score_commands(standin_hub, bloom_run, tmp_path):
    run_dir, _ = bloom_run
    proc = cli(
        standin_hub,
        "generate",
        "--model",
        str(run_dir / "model"),
        "a lighthouse in a storm",
        "a fox",
        "--num",
        "2",
        "--max-new-tokens",
        "8",
        "--json",
        cwd=tmp_path,
    )
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["idea"] for r in rows] == ["a lighthouse in a storm"] * 2 + ["a fox"] * 2

    proc = cli(
        standin_hub,
        "render",
        "--preset",
        "bloom-560m",
        "--size",
        "64",
        "--out",
        str(tmp_path / "renders"),
        "a red fox, oil painting",
        "a lighthouse",
        cwd=tmp_path,
    )
    files = [Path(line) for line in proc.stdout.splitlines()]
    assert len(files) == 2 and all(f.exists() for f in files)

    from PIL import Image

    assert Image.open(files[0]).size == (64, 64)

    proc = cli(
        standin_hub,
        "score",
        "--preset",
        "bloom-560m",
        "--size",
        "64",
        "a red fox, oil painting",
        cwd=tmp_path,
    )
    (row,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert set(row) == {"prompt", "reward", "aesthetic", "similarity", "penalty"}
    # The preset's weights: aesthetic 1, similarity 4 (hinged at 0.28), penalty 1.
    assert row["reward"] == pytest.approx(row["aesthetic"] + 4 * row["similarity"] + row["penalty"], abs=1e-4)


def test_app_serves_the_bloom_560m_preset(standin_hub, tmp_path, free_port):
    from gradio_client import Client

    port = free_port()
    args = [
        "app.py",
        "--preset",
        "bloom-560m",
        "--port",
        str(port),
        "--runs-dir",
        str(tmp_path / "runs"),
        *sets(["render.height=64", "render.width=64"]),
    ]
    server = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env_for(standin_hub),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        client, deadline = None, time.monotonic() + 300
        while client is None:
            assert server.poll() is None, f"app.py exited:\n{server.stderr.read()[-4000:]}"
            assert time.monotonic() < deadline, "app.py did not start serving within 300 s"
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            except Exception:
                time.sleep(2)
        table, *_, status = client.predict("a lighthouse in a storm", 1, 1.0, 1.0, 8, 0, api_name="/generate")
        assert status.startswith("1 prompt(s)"), status
        tuned, start, scores, status = client.predict(table, "", 0, 1.0, 4.0, 1.0, api_name="/render")
        assert status.startswith("Rendered 1 row(s)"), status
        assert scores["headers"][2:6] == ["reward", "aesthetic", "similarity", "penalty"]
        assert all(math.isfinite(v) for v in scores["data"][0][2:6])
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_colab_notebook_runs_in_bloom_560m_mode(standin_hub, tmp_path, monkeypatch):
    """The Colab notebook's real mode, top to bottom, with small overrides (the app cell builds
    the real app; only its `launch` is replaced, as in test_notebooks)."""
    nbclient = pytest.importorskip("nbclient")
    from test_notebooks import EXTRA, inject, load, printed

    for key, value in env_for(standin_hub).items():
        monkeypatch.setenv(key, value)
    nb = load("promptrl_colab.ipynb")
    overrides = [o for o in SMALL_RUN if not o.startswith("steps=")]
    params = {
        "MODE": "bloom-560m",
        "STEPS": 1,
        "OVERRIDES": overrides,
        "COMPARE_IDEAS": ["a lighthouse"],
        "LAUNCH_APP": True,
        "PUSH_TO_HUB": False,
    }
    inject(nb, params, EXTRA["promptrl_colab.ipynb"])
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    try:
        client.execute()
    finally:
        nbformat = pytest.importorskip("nbformat")
        nbformat.write(nb, tmp_path / "executed-promptrl_colab.ipynb")  # to read when something fails
    (models,) = printed(nb, "bloom-560m:")
    assert models.startswith("bigscience/bloom-560m -> stabilityai/sd-turbo, 1 steps")
    assert len(printed(nb, "REWARD_RISE")) == 1
    (launch,) = [json.loads(line) for line in printed(nb, "APP_LAUNCH")]
    assert launch["share"] is False and launch["server_name"] == "127.0.0.1"  # no public link
