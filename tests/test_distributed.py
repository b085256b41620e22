"""Two data-parallel CPU processes (torchrun + gloo): one PPO model, kept identical on both ranks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from promptrl import ValueHeadModel

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.mark.slow
def test_two_processes_stay_in_sync(gpt2_dir, tmp_path):
    env = dict(os.environ, ACCELERATE_USE_CPU="true", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(WORKER),
        str(tmp_path),
        gpt2_dir,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    ranks = [torch.load(tmp_path / f"rank{i}.pt") for i in range(2)]
    assert [r["num_processes"] for r in ranks] == [2, 2]
    assert ranks[0]["next_kl_coef"] == ranks[1]["next_kl_coef"]  # from the global KL
    # The decisions are made on global numbers, although each rank's own differ:
    # the KL controller gets the mean KL over all 8 samples,
    for r in ranks:
        assert r["kl_updates"][-1] == (pytest.approx(r["stats"]["objective/kl"], rel=1e-5), 8)
    # the guards decide alike (and the ratio guard did skip some minibatches),
    assert ranks[0]["verdicts"] == ranks[1]["verdicts"]
    assert {"train", "skip"} <= set(ranks[0]["verdicts"]), ranks[0]["verdicts"]
    # and advantages are whitened over both ranks: rank 1's scores are 10 higher, so its
    # samples' advantages are above the global mean and rank 0's below it.
    for step in range(2):
        assert ranks[0]["advantage_means"][step] < 0 < ranks[1]["advantage_means"][step]

    # Every logged statistic is the global one: the same on both ranks, over both ranks' data.
    s0, s1 = ranks[0]["stats"], ranks[1]["stats"]
    assert s0.keys() == s1.keys()
    different = {k: (s0[k], s1[k]) for k in s0 if s0[k] != pytest.approx(s1[k], rel=1e-6, abs=1e-7)}
    assert not different, different
    scores = torch.cat([ranks[0]["scores"], ranks[1]["scores"]])
    assert s0["ppo/mean_scores"] == pytest.approx(scores.mean().item(), rel=1e-6)
    assert s0["ppo/std_scores"] == pytest.approx(scores.std().item(), rel=1e-5)
    kl_dist = ranks[0]["kl_dist"]  # one KL per sample of both ranks
    assert len(kl_dist) == 8 and s0["objective/kl"] == pytest.approx(kl_dist.mean().item(), rel=1e-5)
    assert torch.equal(ranks[0]["kl_dist"], ranks[1]["kl_dist"])

    start = ValueHeadModel.from_pretrained(gpt2_dir).state_dict()
    p0, p1 = ranks[0]["params"], ranks[1]["params"]
    assert p0.keys() == p1.keys() == start.keys()
    assert all(torch.equal(p0[k], p1[k]) for k in p0)
    assert any(not torch.equal(p0[k], start[k]) for k in p0)


@pytest.mark.slow
def test_prompt_trainer_runs_as_two_processes_through_accelerate_launch(tmp_path):
    """The tiny preset, 2 PPO steps, as two gloo processes: both ranks train one model, the main
    process alone writes the run directory."""
    env = dict(os.environ, ACCELERATE_USE_CPU="true", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    out = tmp_path / "run"
    cmd = [
        str(Path(sys.executable).with_name("accelerate")),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "promptrl",
        "train",
        "--preset",
        "tiny",
        "--output-dir",
        str(out),
        "--set",
        "steps=2",
        "--set",
        "sft.enabled=false",
        "--set",
        "eval_ideas=2",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    import json

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "ppo/loss/total" in r] == [1, 2]
    assert (out / "model").is_dir()
