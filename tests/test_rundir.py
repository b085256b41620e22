"""Run directories you can trust: checkpoints are data, a broken one is skipped, a used dir is
not clobbered, a changed config does not silently resume, NaN never reaches a checkpoint, and a
run dir can be moved."""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from promptrl import rundir
from promptrl.cli import main
from promptrl.config import load_config
from promptrl.paths import inside, save_image_atomically, write_dir_atomically
from promptrl.ppo.rollback import NonFiniteError
from promptrl.state import load_state, save_state
from promptrl.trainer import PromptTrainer

BASE = [
    "sft.enabled=false",
    "ppo.batch_size=4",
    "ppo.mini_batch_size=2",
    "ppo.forward_batch_size=4",
    "samples_per_idea=2",
    "image_every=0",
    "eval_ideas=2",
    "trackers=[]",
    "progress=false",
    "generation.max_new_tokens=8",
]


def config(out, *overrides):
    return load_config("tiny", None, [*BASE, f"output_dir={out}", *overrides])


def comparable(history):
    return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in history]


class Poison:
    """Unpickling this runs code: what a malicious trainer_state.pt would hold."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_state_round_trips_as_json_and_safetensors(tmp_path):
    random_state = np.random.RandomState(3).get_state()
    state = {
        "step": 7,
        "lr": 1.41e-5,
        "nan": float("nan"),
        "t": torch.arange(6.0).reshape(2, 3),
        "rng": random_state,
        "by_int": {0: {"exp_avg": torch.ones(2)}, 1: (1, 2)},
        "img": Image.new("RGB", (4, 2), (10, 20, 30)),
        "none": None,
        "__odd": ["x"],
    }
    save_state(state, tmp_path / "s.json", tmp_path / "s.safetensors")
    assert {p.name for p in tmp_path.iterdir()} == {"s.json", "s.safetensors"}
    back = load_state(tmp_path / "s.json", tmp_path / "s.safetensors")
    assert back["step"] == 7 and back["lr"] == 1.41e-5 and np.isnan(back["nan"]) and back["none"] is None
    assert torch.equal(back["t"], state["t"]) and back["__odd"] == ["x"]
    assert back["rng"][0] == random_state[0] and np.array_equal(back["rng"][1], random_state[1])
    assert back["rng"][1].dtype == random_state[1].dtype and back["rng"][2:] == random_state[2:]
    assert torch.equal(back["by_int"][0]["exp_avg"], torch.ones(2)) and back["by_int"][1] == (1, 2)
    assert back["img"].tobytes() == state["img"].tobytes()
    with pytest.raises(TypeError, match="only data"):
        save_state({"f": print}, tmp_path / "s.json", tmp_path / "s.safetensors")


def test_a_poisoned_pickle_checkpoint_is_never_unpickled(tmp_path, capsys):
    run, marker = tmp_path / "run", tmp_path / "pwned"
    ckpt = run / "checkpoint-000001"
    ckpt.mkdir(parents=True)
    (ckpt / rundir.LEGACY_STATE_FILE).write_bytes(pickle.dumps({"step": Poison(marker)}))
    with pytest.raises(rundir.CheckpointError, match="unpickling can run code"):
        rundir.load_checkpoint(run)
    assert (
        main(
            [
                "train",
                "--resume",
                str(run),
                "--preset",
                "tiny",
                *sum((["--set", s] for s in BASE), []),
                "--output-dir",
                str(run),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "trainer_state.pt" in err and "unpickling can run code" in err
    # A pickle posing as the JSON/safetensors pair fails to parse; it is not executed either.
    (ckpt / rundir.STATE_FILE).write_bytes(pickle.dumps(Poison(marker)))
    (ckpt / rundir.TENSORS_FILE).write_bytes(pickle.dumps(Poison(marker)))
    with pytest.raises(rundir.CheckpointError, match="trainer_state"):
        rundir.load_checkpoint(run)
    assert not marker.exists()


def test_corrupt_newest_checkpoint_falls_back_and_resume_stays_exact(tmp_path, caplog):
    expected = PromptTrainer(config(tmp_path / "a", "steps=3", "save_every=1", "keep_checkpoints=3")).train()
    run = tmp_path / "b"
    crashed = PromptTrainer(config(run, "steps=3", "save_every=1", "keep_checkpoints=3"))
    crashed.train()
    newest = run / "checkpoint-000003" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])  # a torn write
    with caplog.at_level(logging.WARNING, logger="promptrl"):
        ckpt, state = rundir.load_checkpoint(run)
    assert ckpt.name == "checkpoint-000002" and state["step"] == 2
    assert str(newest) in caplog.text and "falling back" in caplog.text
    resumed = PromptTrainer(config(run, "steps=3", "save_every=1", "keep_checkpoints=3"))
    assert comparable(resumed.train(resume=run)) == comparable(expected)
    # The run dir holds no absolute paths: the tiny assets stay named, so the dir can move.
    moved = tmp_path / "moved"
    shutil.move(str(run), str(moved))
    cache = os.environ["PROMPTRL_CACHE"]
    for name in (rundir.CONFIG_FILE, "model/promptrl.json", "checkpoint-000003/trainer_state.json"):
        lines = [x for x in (moved / name).read_text().splitlines() if not x.startswith("output_dir:")]
        assert not [x for x in lines if cache in x or str(tmp_path) in x], name  # output_dir: as given
    assert json.loads((moved / "model" / rundir.RUN_INFO_FILE).read_text())["start_model"] == "tiny:policy"
    more = PromptTrainer(config(moved, "steps=4", "save_every=1", "keep_checkpoints=3"))
    assert len(more.train(resume=moved)) == 4  # `steps` may change on resume


def test_used_dir_changed_config_last_step_and_pruning(tmp_path, capsys):
    run = tmp_path / "run"
    PromptTrainer(config(run, "steps=3", "save_every=2", "keep_checkpoints=1")).train()
    # The last step is checkpointed although 3 % 2 != 0; keep_checkpoints=1 keeps only it.
    assert [p.name for p in rundir.checkpoints(run)] == ["checkpoint-000003"]
    assert not list(run.glob(".tmp-*"))
    # A new run into the used dir is refused; --overwrite replaces it.
    with pytest.raises(ValueError, match="already holds a run; pass --resume"):
        PromptTrainer(config(run, "steps=1")).setup()
    assert rundir.checkpoints(run)  # untouched
    # Resuming with a changed learning rate lists the difference and refuses.
    with pytest.raises(ValueError, match=r"ppo.lr: 0.001 -> 0.002.*Only .*steps"):
        PromptTrainer(config(run, "steps=3", "ppo.lr=0.002")).setup(resume=run)
    args = [
        "train",
        "--preset",
        "tiny",
        *sum((["--set", s] for s in BASE), []),
        "--set",
        "steps=1",
        "--output-dir",
        str(run),
    ]
    assert main(args) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main([*args, "--set", "save_every=0", "--overwrite"]) == 0
    assert [p.name for p in rundir.checkpoints(run)] == ["checkpoint-000001"]  # save_every=0: the end only
    assert [json.loads(x)["step"] for x in (run / rundir.METRICS_FILE).read_text().splitlines()] == [1]


def test_a_kill_while_writing_leaves_the_old_model(tmp_path):
    final = tmp_path / "model"
    final.mkdir()
    (final / "weights").write_text("old")

    def torn(tmp):
        (tmp / "weights").write_text("half")
        raise KeyboardInterrupt  # killed mid-write

    with pytest.raises(KeyboardInterrupt):
        write_dir_atomically(final, torn)
    assert (final / "weights").read_text() == "old"
    rundir.Run(tmp_path).prepare(resume=True, overwrite=False)  # the next start clears the leftovers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_non_finite_steps_are_rolled_back_then_stop_the_run(tmp_path):
    """Scores of 1e20 without score scaling blow the value loss up to inf: each step is undone."""

    def huge(images, prompts, ideas):
        return torch.full((len(prompts),), 1e20)

    cfg = config(
        tmp_path,
        "steps=5",
        "save_every=1",
        "ppo.use_score_scaling=false",
        "ppo.use_score_norm=false",
        "ppo.score_clip=null",
        "rewards.baseline=none",
    )
    trainer = PromptTrainer(cfg, reward=huge)
    trainer.setup()
    start = {k: v.clone() for k, v in trainer.ppo.policy.state_dict().items()}
    optimizer = json.dumps(str(trainer.ppo.optimizer.state_dict()))
    with pytest.raises(NonFiniteError, match="3 steps in a row"):
        trainer.train()
    assert all(torch.equal(start[k], v) for k, v in trainer.ppo.policy.state_dict().items())
    assert json.dumps(str(trainer.ppo.optimizer.state_dict())) == optimizer
    rows = [json.loads(x) for x in (tmp_path / rundir.METRICS_FILE).read_text().splitlines()]
    assert [r["ppo/rolled_back"] for r in rows] == [1.0, 1.0]  # the third raised before logging
    for ckpt in rundir.checkpoints(tmp_path):  # what was saved holds finite weights only
        from safetensors.torch import load_file

        assert all(torch.isfinite(t).all() for t in load_file(str(ckpt / "model.safetensors")).values())


def test_pollers_never_see_a_grid_being_written(tmp_path):
    (tmp_path / rundir.IMAGES_DIR).mkdir()
    (tmp_path / rundir.IMAGES_DIR / ".tmp-step_000002.png").write_bytes(b"\x89PNG half")
    save_image_atomically(Image.new("RGB", (2, 2)), rundir.RunPaths(tmp_path).image(1))
    assert [p.name for p in rundir.RunPaths(tmp_path).image_grids()] == ["step_000001.png"]


def test_paths_inside_the_run_are_recorded_relative(tmp_path):
    run = tmp_path / "run"
    (run / "sft").mkdir(parents=True)
    assert rundir.portable(str(run / "sft"), run) == "run:sft"
    assert rundir.portable("gpt2", run) == "gpt2" and rundir.portable("tiny:policy", run) == "tiny:policy"
    assert rundir.resolve_recorded("run:sft", tmp_path / "elsewhere") == str(tmp_path / "elsewhere" / "sft")
    with pytest.raises(ValueError, match="outside"):
        inside(run, run / ".." / "escape")
    (run / "link").symlink_to(tmp_path)
    with pytest.raises(ValueError, match="outside"):
        inside(run, run / "link" / "x")
