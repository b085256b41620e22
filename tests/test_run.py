"""`rundir.Run`: one way from any path of a run (the run dir, its model/, a checkpoint, sft/, or a
model of no run) to what the run records: its config, start model, held-out ideas, generator."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from promptrl.config import load_config
from promptrl.errors import NotFoundError
from promptrl.rundir import Run
from promptrl.standins import tiny_assets
from promptrl.trainer import PromptTrainer

SMALL = [
    "steps=1",
    "save_every=1",
    "sft.enabled=true",
    "sft.epochs=1",
    "ppo.batch_size=4",
    "ppo.mini_batch_size=2",
    "ppo.forward_batch_size=4",
    "samples_per_idea=2",
    "image_every=0",
    "eval_ideas=2",
    "eval.heldout=2",
    "eval.samples=1",
    "eval.bootstrap=20",
    "trackers=[]",
    "progress=false",
    "generation.max_new_tokens=6",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny run with a supervised warm start, one checkpoint and held-out ideas."""
    out = tmp_path_factory.mktemp("run") / "tiny"
    trainer = PromptTrainer(load_config("tiny", None, [*SMALL, f"output_dir={out}"]))
    trainer.train()
    return out, trainer


def test_every_path_of_a_run_finds_the_run(trained):
    run_dir, _ = trained
    ckpt = run_dir / "checkpoint-000001"
    cases = {
        run_dir: run_dir / "model",  # a run: its final model
        run_dir / "model": run_dir / "model",
        ckpt: ckpt,
        run_dir / "sft": run_dir / "sft",
    }
    for given, model in cases.items():
        run = Run.locate(given)
        assert (run.root, run.model) == (run_dir, model), given
        assert run.paths.config == run_dir / "config.yaml"


def test_the_start_model_is_what_the_run_started_from(trained):
    run_dir, trainer = trained
    tiny_policy = tiny_assets()["policy"]
    run = Run.locate(run_dir)
    # the policy trained from the warm start, recorded portably as run:sft
    assert json.loads((run_dir / "model" / "promptrl.json").read_text())["start_model"] == "run:sft"
    assert (run.start_model, run.start_source) == (str(run_dir / "sft"), "recorded in promptrl.json")
    assert run.start_model == trainer.start_model
    # the warm start itself started from the config's policy
    assert Run.locate(run_dir / "sft").start_model == tiny_policy


def test_a_model_without_its_record_falls_back_on_the_config(trained, tmp_path):
    run_dir, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "checkpoint-000001" / "promptrl.json").unlink()
    run = Run.locate(copy / "checkpoint-000001")
    assert (run.start_model, run.start_source) == (str(copy / "sft"), "the run's supervised warm start")


def test_config_and_heldout_are_the_runs(trained):
    run_dir, trainer = trained
    run = Run.locate(run_dir / "checkpoint-000001")
    assert run.config.to_dict() == trainer.given_config.to_dict()
    assert run.config.policy.model == "tiny:policy"  # as recorded: portable
    assert run.heldout == trainer.heldout and len(run.heldout) == 2
    assert run.load_config(["eval.samples=3"]).eval.samples == 3


def test_the_generator_is_the_models(trained):
    run_dir, trainer = trained
    generator = Run.locate(run_dir).load_generator(device="cpu")
    final = trainer.ppo.policy.state_dict()
    loaded = generator.model.state_dict()
    assert final.keys() == loaded.keys() and all(torch.equal(final[k].cpu(), loaded[k]) for k in final)
    assert not generator.model.training
    assert generator.config == trainer.config.generation
    start = Run.locate(run_dir).load_generator(Run.locate(run_dir).start_model, "cpu")
    assert any(not torch.equal(loaded[k], v) for k, v in start.model.state_dict().items())
    torch.manual_seed(0)
    assert len(generator(["a red fox", "a quiet lake"]).prompts) == 2


def test_a_model_of_no_run(tmp_path):
    model = tmp_path / "mine"
    shutil.copytree(tiny_assets()["policy"], model)
    run = Run.locate(model)
    assert (run.root, run.model, run.paths) == (None, model, None)
    assert run.start_model is None and run.heldout is None
    assert run.config.preset == "tiny"  # nothing recorded: the default preset
    (model / "promptrl.json").write_text(json.dumps({"start_model": "gpt2", "step": 3, "preset": "gpt2"}))
    run = Run.locate(model)
    assert run.start_model == "gpt2" and run.config.preset == "gpt2"


def test_paths_that_hold_no_model_say_so(tmp_path):
    with pytest.raises(NotFoundError, match="does not exist"):
        Run.locate(tmp_path / "nowhere")
    (tmp_path / "config.yaml").write_text("preset: tiny\n")
    with pytest.raises(NotFoundError, match="no final model"):
        Run.locate(tmp_path)
