"""The tiny offline models: built once, deterministic, and usable like the real ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from promptrl.standins import tiny


@pytest.fixture(scope="module")
def assets():
    """Tiny models in this session's cache (conftest.tiny_cache)."""
    return tiny.tiny_assets()


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMPTRL_CACHE", str(tmp_path))
    assert tiny.default_cache_dir() == tmp_path / "tiny"
    monkeypatch.delenv("PROMPTRL_CACHE")
    assert tiny.default_cache_dir() == Path.home() / ".cache" / "promptrl" / "tiny"


def test_builders_are_idempotent(assets):
    files = [
        Path(assets["policy"]) / "config.json",
        Path(assets["pipeline"]) / "model_index.json",
        Path(assets["clip_pretrained"]),
        Path(assets["aesthetic_weights"]),
    ]
    before = [f.stat().st_mtime_ns for f in files]
    again = tiny.tiny_assets(Path(assets["policy"]).parent)
    assert again == assets
    assert [f.stat().st_mtime_ns for f in files] == before


def test_half_built_directory_is_replaced(tmp_path):
    stale = tmp_path / "clip"
    stale.mkdir()
    (stale / "junk.bin").write_bytes(b"half written")
    out = tiny.build_tiny_clip(stale)
    assert not (stale / "junk.bin").exists()
    assert Path(out["aesthetic_weights"]).exists() and Path(out["pretrained"]).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_policy_tokenizer_round_trips_and_has_distinct_special_tokens(assets):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(assets["policy"])
    model = AutoModelForCausalLM.from_pretrained(assets["policy"])
    text = "a lighthouse in a storm, oil painting — café 😀"
    assert tok.decode(tok(text).input_ids) == text
    ids = {tok.pad_token_id, tok.bos_token_id, tok.eos_token_id}
    assert len(ids) == 3 and None not in ids
    assert model.config.pad_token_id == tok.pad_token_id
    assert model.config.bos_token_id == tok.bos_token_id
    assert model.config.eos_token_id == tok.eos_token_id
    assert 1000 <= len(tok) <= 2000 and model.config.vocab_size == len(tok)
    assert model.config.model_type == "bloom" and model.config.hidden_size == 64
    # trained on the bundled prompts: common words are single tokens
    assert len(tok(" lighthouse").input_ids) <= 2


def test_policy_build_is_deterministic(assets, tmp_path):
    from safetensors.torch import load_file

    other = tiny.build_tiny_policy(tmp_path / "policy")
    for name in ("tokenizer.json",):
        assert (Path(other) / name).read_text() == (Path(assets["policy"]) / name).read_text()
    a = load_file(Path(assets["policy"]) / "model.safetensors")
    b = load_file(Path(other) / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_pipeline_tokenizer_is_real_clip_bpe(assets):
    import open_clip
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(Path(assets["pipeline"]) / "tokenizer")
    assert tok.model_max_length == 77 and len(tok) == 49408
    for text in ["a photo of a cat", "A Lighthouse, STORM!! 4k, über-detailed"]:
        ref = open_clip.tokenize([text])[0]
        assert tok(text).input_ids == ref[: int(ref.argmax()) + 1].tolist()


def test_prompt_changes_the_image(assets):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(assets["pipeline"])
    pipe.set_progress_bar_config(disable=True)
    prompts = ["a lighthouse in a storm", "an old fox reading by candlelight"] + ["a lighthouse in a storm"]
    generators = [torch.Generator().manual_seed(s) for s in (0, 0, 1)]
    images = pipe(prompt=prompts, generator=generators, num_inference_steps=1, output_type="pt").images
    assert images.shape == (3, 3, 64, 64)
    by_prompt = (images[0] - images[1]).abs().mean()
    by_seed = (images[0] - images[2]).abs().mean()
    assert by_prompt > 0.03 and by_prompt > 0.25 * by_seed


def test_tiny_aesthetic_scores_spread_and_follow_prompts(assets):
    from promptrl.rendering import RenderConfig, Renderer
    from promptrl.rewards import AestheticReward, ClipModel

    renderer = Renderer(RenderConfig(pipeline=assets["pipeline"], height=64, width=64))
    clip = ClipModel(assets["clip_model_name"], assets["clip_pretrained"], device="cpu")
    aesthetic = AestheticReward(clip, assets["aesthetic_weights"])
    prompts = ["a fox", "a fox, oil painting", "a fox in the snow, 35mm photo", "a red fox"]
    out = renderer(prompts, ideas=["a fox"] * 4)  # one idea: one seed, only prompts differ
    scores = aesthetic(out.images, out.prompts, ["a fox"] * 4)
    assert len(set(out.seeds)) == 1
    assert 2 < scores.mean() < 8 and scores.std() > 0.1


def test_tiny_clip_loads_in_a_fresh_process(assets):
    code = (
        "import sys, json; from promptrl.rewards import ClipModel; "
        "m = ClipModel(sys.argv[1], sys.argv[2], device='cpu'); "
        "print(json.dumps(list(m.text_embeddings(['a fox']).shape)))"
    )
    env = {**os.environ, "PROMPTRL_CACHE": str(Path(assets["policy"]).parents[1])}
    out = subprocess.run(
        [sys.executable, "-c", code, assets["clip_model_name"], assets["clip_pretrained"]],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [1, 64]


def test_aesthetic_weights_have_the_laion_layout(assets):
    from safetensors.torch import load_file

    state = load_file(assets["aesthetic_weights"])
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert shapes == {
        "layers.0.weight": (1024, 64),
        "layers.0.bias": (1024,),
        "layers.2.weight": (128, 1024),
        "layers.2.bias": (128,),
        "layers.4.weight": (64, 128),
        "layers.4.bias": (64,),
        "layers.6.weight": (16, 64),
        "layers.6.bias": (16,),
        "layers.7.weight": (1, 16),
        "layers.7.bias": (1,),
    }


def test_tiny_names_resolve_and_unresolve(assets):
    from promptrl.config import get_preset

    named = get_preset("tiny")
    resolved = tiny.resolve_tiny(named)
    assert resolved.policy.model == assets["policy"]
    assert resolved.rewards.hps_model == resolved.rewards.clip_model == tiny.TINY_CLIP_NAME
    assert tiny.unresolve_tiny(resolved) == named
    assert tiny.resolve_tiny("tiny:pipeline") == assets["pipeline"]
    assert tiny.unresolve_tiny("/elsewhere/model") == "/elsewhere/model"
    with pytest.raises(ValueError, match="Unknown tiny asset 'nope'"):
        tiny.resolve_tiny("tiny:nope")


def test_a_run_records_tiny_names_not_cache_paths(assets, tmp_path, monkeypatch):
    """A config resolved before training (as the notebook does) is recorded with its
    `tiny:<asset>` names, so config.yaml holds no absolute path and the run dir can move."""
    import yaml

    from promptrl.config import load_config
    from promptrl.trainer import PromptTrainer

    monkeypatch.chdir(tmp_path)
    settings = ["output_dir=run", "sft.enabled=false", "trackers=[]", "progress=false"]
    trainer = PromptTrainer(tiny.resolve_tiny(load_config("tiny", None, settings)))
    trainer.setup()
    recorded = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())

    def strings(value):
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return [value] if isinstance(value, str) else []

    assert not [s for s in strings(recorded) if os.path.isabs(s)]
    assert recorded["policy"]["model"] == "tiny:policy" and trainer.start_record == "tiny:policy"
    assert recorded["rewards"]["clip_pretrained"] == "tiny:clip_pretrained"
