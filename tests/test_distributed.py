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
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(WORKER), str(tmp_path), gpt2_dir]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    ranks = [torch.load(tmp_path / f"rank{i}.pt") for i in range(2)]
    assert [r["num_processes"] for r in ranks] == [2, 2]
    assert ranks[0]["mean_score"] != ranks[1]["mean_score"]  # each rank had its own data
    assert ranks[0]["kl"] != ranks[1]["kl"]
    assert ranks[0]["next_kl_coef"] == ranks[1]["next_kl_coef"]  # from the global KL

    start = ValueHeadModel.from_pretrained(gpt2_dir).state_dict()
    p0, p1 = ranks[0]["params"], ranks[1]["params"]
    assert p0.keys() == p1.keys() == start.keys()
    assert all(torch.equal(p0[k], p1[k]) for k in p0)
    assert any(not torch.equal(p0[k], start[k]) for k in p0)
