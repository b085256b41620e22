"""Config layering (preset -> YAML -> --set) and the command line's errors and help."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from promptrl.cli import main
from promptrl.config import get_preset, load_config, parse_overrides
from promptrl.presets import DEFAULT_PRESET, PRESETS


def test_overrides_parse_nested_and_typed():
    assert parse_overrides(["ppo.lr=0.5", "steps=5", "trackers=[]", "render.device=cpu"]) == {
        "ppo": {"lr": 0.5},
        "steps": 5,
        "trackers": [],
        "render": {"device": "cpu"},
    }
    config = load_config("tiny", None, ["ppo.lr=2e-3", "steps=7", "generation.top_p=0.9"])
    assert config.ppo.lr == pytest.approx(2e-3) and isinstance(config.ppo.lr, float)
    assert config.steps == 7 and config.generation.top_p == 0.9
    assert config.render.pipeline == "tiny:pipeline"  # untouched fields keep the preset's value


def test_yaml_file_then_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("preset: gpt2\nsteps: 3\nppo:\n  lr: 0.001\n  batch_size: 8\n")
    config = load_config(None, str(path), ["steps=4"])
    assert config.preset == "gpt2" and config.policy.model == "gpt2"
    assert config.ppo.lr == 0.001 and config.ppo.batch_size == 8 and config.steps == 4


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["ppo.lrr=1"], "Unknown config key 'ppo.lrr'"),
        (["steps=many"], "expects int"),
        (["ppo=3"], "is a section"),
        (["ppo.batch_size=0"], "'ppo.batch_size' must be at least 1, got 0"),
        (["generation.template=no placeholder"], "{idea}"),
        (["novalue"], "key=value"),
    ],
)
def test_bad_overrides_are_clear(overrides, message):
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        load_config("tiny", None, overrides)


def test_presets_are_complete():
    families = {"sdxl-turbo", "sd3.5-medium", "flux-schnell", "pixart-sigma", "sana-600m"}
    assert set(PRESETS) == {"tiny", "bloom-560m", "gpt2", "qwen2.5-0.5b", *families}
    bloom = get_preset("bloom-560m")
    assert bloom.policy.model == "bigscience/bloom-560m" and bloom.render.pipeline == "stabilityai/sd-turbo"
    assert {t["type"] for t in bloom.rewards.terms} >= {"aesthetic", "similarity"}
    assert bloom.rewards.clip_model == "ViT-L-14" and bloom.rewards.clip_pretrained == "openai"
    with pytest.raises(ValueError, match="Available presets"):
        get_preset("nope")


def test_cli_errors_are_one_line(capsys, tmp_path):
    assert main(["train", "--preset", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Unknown preset 'nope'" in err
    assert main(["generate", "--model", str(tmp_path / "missing"), "an idea"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not exist" in err
    missing = tmp_path / "no-such-model"
    assert (
        main(["train", "--preset", "tiny", "--set", f"policy.model={missing}", "--output-dir", str(tmp_path / "run")])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()  # (tiny-model build progress bars may precede it)
    assert (
        err[-1] == f"promptrl train: error: policy.model '{missing}' does not exist; pass a directory "
        "written by save_pretrained or a hub name such as 'bigscience/bloom-560m'."
    )


def test_every_entry_point_starts_from_one_default_preset(tmp_path, capsys):
    file = tmp_path / "my.yaml"
    file.write_text("preset: gpt2\nsteps: 3\n")
    assert load_config().preset == DEFAULT_PRESET
    named = load_config("bloom-560m", str(file))  # the named preset is the base, the file's label aside
    assert named.policy.model == get_preset("bloom-560m").policy.model != get_preset("gpt2").policy.model
    assert load_config(None, str(file)).preset == "gpt2"  # the file names its own
    from promptrl.app import build_app

    # The app follows the same rule: the file's preset, not tiny's models under its name.
    app_config = build_app(config_file=str(file), preload=False).models.config
    assert (app_config.preset, app_config.policy.model, app_config.steps) == ("gpt2", "gpt2", 3)
    assert build_app(preload=False).models.config.preset == DEFAULT_PRESET
    # render, like every other command, renders with the default preset's settings (offline here)
    out = tmp_path / "renders"
    assert main(["render", "--out", str(out), "a cat"]) == 0
    (image,) = sorted(out.iterdir())
    from PIL import Image

    assert Image.open(image).size == (get_preset(DEFAULT_PRESET).render.width, get_preset(DEFAULT_PRESET).render.height)


def test_help_and_module_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "promptrl", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("train", "sft", "generate", "render", "score", "app"):
        assert command in out
    for command in ("train", "sft", "generate", "render", "score"):
        with pytest.raises(SystemExit) as info:
            main([command, "--help"])
        assert info.value.code == 0


def test_one_sampling_temperature(tmp_path):
    # Given once, under either key, the other follows.
    for key in ("generation.temperature", "ppo.temperature"):
        config = load_config("tiny", None, [f"{key}=0.7"])
        assert config.generation.temperature == config.ppo.temperature == 0.7
    # Given twice with different values: one line naming both keys and values.
    with pytest.raises(ValueError) as err:
        load_config("tiny", None, ["generation.temperature=0.7", "ppo.temperature=0.9"])
    assert str(err.value).count("\n") == 0
    assert "'generation.temperature' (0.7)" in str(err.value) and "'ppo.temperature' (0.9)" in str(err.value)
    # A run's config.yaml records both; an override of one of them sets both.
    path = tmp_path / "config.yaml"
    path.write_text("generation:\n  temperature: 0.7\nppo:\n  temperature: 0.7\n")
    config = load_config("tiny", str(path), ["generation.temperature=0.5"])
    assert config.generation.temperature == config.ppo.temperature == 0.5
    # A whole TrainConfig built in Python decides too: two different values are refused.
    with pytest.raises(ValueError, match="'generation.temperature' .0.7. and 'ppo.temperature' .1.0. differ"):
        dataclasses.replace(
            get_preset("tiny"),
            generation=dataclasses.replace(get_preset("tiny").generation, temperature=0.7),
        )


def test_score_defaults_to_the_default_preset(capsys):
    # No --preset: the tiny preset's rewards and render settings, so it runs offline.
    assert main(["score", "a red fox, oil painting"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert set(row) == {"prompt", "reward", "aesthetic", "similarity", "penalty"}
    # The tiny preset's weights: 1 each.
    assert row["reward"] == pytest.approx(row["aesthetic"] + row["similarity"] + row["penalty"], abs=1e-4)


def test_generate_samples_as_its_model_was_trained_to(tmp_path, monkeypatch):
    import shutil

    from promptrl.config import save_config
    from promptrl.ppo import sampling as generation
    from promptrl.presets import TEMPLATE
    from promptrl.standins.tiny import tiny_assets

    used = []
    real = generation.PromptGenerator

    def recording(model, tokenizer, config):
        used.append((config.template, config.max_new_tokens, config.top_p))
        return real(model, tokenizer, config)

    monkeypatch.setattr(generation, "PromptGenerator", recording)
    run, bare = tmp_path / "run", tmp_path / "bare"
    shutil.copytree(tiny_assets()["policy"], run / "model")
    shutil.copytree(tiny_assets()["policy"], bare)
    tiny = get_preset("tiny")
    own = dataclasses.replace(tiny.generation, template="Q: {idea} A:", max_new_tokens=3, top_p=0.9)
    save_config(dataclasses.replace(tiny, generation=own), run / "config.yaml")
    for model, flags in (
        (run / "model", []),
        (run / "model", ["--template", "{idea},", "--max-new-tokens", "2", "--top-p", "0.5"]),
        (bare, []),
    ):
        assert main(["generate", "--model", str(model), *flags, "a fox"]) == 0
    # the run's config.yaml; the flags over it; a directory that records none: the default preset's
    assert used == [
        ("Q: {idea} A:", 3, 0.9),
        ("{idea},", 2, 0.5),
        (TEMPLATE, tiny.generation.max_new_tokens, tiny.generation.top_p),
    ]
