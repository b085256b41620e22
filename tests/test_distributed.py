"""Two data-parallel CPU processes (torchrun + gloo): one PPO model, kept identical on both ranks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from promptrl import ValueHeadModel
from promptrl.ppo.core import grpo_advantages

WORKER = Path(__file__).with_name("ddp_worker.py")


def run_workers(tmp_path, gpt2_dir, *mode: str) -> list[dict]:
    """ddp_worker.py as two gloo processes; each rank's record."""
    env = dict(os.environ, ACCELERATE_USE_CPU="true", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run(
        [*cmd, str(WORKER), str(tmp_path), gpt2_dir, *mode], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [torch.load(tmp_path / f"rank{i}.pt") for i in range(2)]


@pytest.mark.slow
def test_two_processes_stay_in_sync(gpt2_dir, tmp_path):
    ranks = run_workers(tmp_path, gpt2_dir)
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
def test_two_processes_agree_on_group_statistics(gpt2_dir, tmp_path):
    """GRPO with the batch's std and dapo's token normalisation, two groups per rank. A group
    lies on one rank (whole groups per step call), and what a rank computes for it is what one
    process computes for the whole batch: the advantages of both ranks together equal those of
    one process given both ranks' scores, and each rank's loss divides by half the tokens of
    both ranks (so the averaged gradients are the token mean over both)."""
    ranks = run_workers(tmp_path, gpt2_dir, "grpo")
    scores = torch.cat([r["scores"] for r in ranks])
    one_process = grpo_advantages(scores, 2, "batch")
    torch.testing.assert_close(torch.cat([r["advantages"] for r in ranks]), one_process)
    per_rank = [grpo_advantages(r["scores"], 2, "batch") for r in ranks]  # each rank alone: another std
    assert not torch.allclose(torch.cat(per_rank), one_process)
    tokens = sum(sum(r["lengths"]) for r in ranks)
    assert [r["step_tokens"] for r in ranks] == [tokens / 2, tokens / 2]
    assert sum(ranks[0]["lengths"]) != sum(ranks[1]["lengths"])
    s0, s1 = ranks[0]["stats"], ranks[1]["stats"]
    assert s0 == pytest.approx(s1, rel=1e-6, abs=1e-7)
    assert s0["grpo/mean_scores"] == pytest.approx(scores.mean().item(), rel=1e-6)
    p0, p1 = ranks[0]["params"], ranks[1]["params"]
    assert all(torch.equal(p0[k], p1[k]) for k in p0)


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
