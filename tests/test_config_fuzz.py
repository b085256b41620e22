"""Every config field, fed garbage: zero, negative, huge, NaN, infinity, the wrong type, a
path-like string. Each is either accepted as a valid value or refused with one line naming the
key; garbage of the wrong type always is refused; and the CLI refuses before touching the disk.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing

import pytest

from promptrl.cli import main
from promptrl.config import TrainConfig, get_preset, update_dataclass

PATHLIKE = "../../etc/passwd"
CHOICES = {"rewards.baseline", "render.seed_mode", "render.dtype", "ppo.mixed_precision"}
PPO_OWN_RANGES = "ppo."
"""PPOConfig checks its own ranges (ppo_config.py); here its fields get the type garbage only."""


def leaves(obj, prefix=""):
    """(dotted key, type hint) of every non-section field of a config."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from leaves(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", hints[f.name]


def base_type(hint):
    """`int` for `int | None`, `list` for `list[str] | None`, ..."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_origin(hint) or hint


def nested(key: str, value) -> dict:
    out = value
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


FIELDS = dict(leaves(TrainConfig()))


def apply(key, value):
    return update_dataclass(get_preset("tiny"), nested(key, value))


def refused(key, value) -> str:
    with pytest.raises(ValueError) as info:
        apply(key, value)
    message = str(info.value)
    assert message.count("\n") == 0, message
    assert key in message or key.split(".")[-1] in message, (key, message)
    return message


def garbage(kind) -> list:
    """Values that can never be right for a field of this type."""
    common = [[1, 2], {"x": 1}]
    if kind in (int, float):
        return [*common, math.nan, math.inf, -math.inf, True, PATHLIKE]
    if kind is bool:
        return [*common, 2, "yes please", PATHLIKE]
    if kind is str:
        return common
    if kind is list:
        return [5, PATHLIKE, {"x": 1}]
    raise AssertionError(kind)


@pytest.mark.parametrize("key", list(FIELDS))
def test_every_field_refuses_garbage_with_one_line_naming_it(key):
    kind = base_type(FIELDS[key])
    for value in garbage(kind):
        refused(key, value)
    if key in CHOICES:
        refused(key, PATHLIKE)
    if kind in (int, float) and not key.startswith(PPO_OWN_RANGES):
        refused(key, -1)  # no field outside PPO has a meaningful negative value
        for value in (0, 10**12):  # valid for some fields: accepted, or refused in one line
            try:
                apply(key, value)
            except ValueError:
                refused(key, value)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["steps=0"], "'steps' must be at least 1"),
        (["steps=-5"], "'steps' must be at least 1"),
        (["steps=true"], "'steps' expects int"),
        (["eval_ideas=-1"], "'eval_ideas' must be at least 1"),
        (["samples_per_idea=0"], "'samples_per_idea' must be at least 1"),
        (["samples_per_idea=3"], "'samples_per_idea' (3) must divide ppo.batch_size"),
        (["keep_checkpoints=0"], "'keep_checkpoints' must be at least 1"),
        (["sft.batch_size=0"], "'sft.batch_size' must be at least 1"),
        (["render.height=0"], "'render.height' must be a multiple of 8"),
        (
            ["render.num_inference_steps=0"],
            "'render.num_inference_steps' must be between 1 and 1000",
        ),
        (["generation.template=no placeholder"], "template must contain '{idea}'"),
        (["ppo.lr=.nan"], "'ppo.lr' must be a finite number"),
        (["rewards.baseline=../x"], "'rewards.baseline' must be one of"),
        (["rewards.terms=[{weight: 1}]"], "'rewards.terms' item 1 must be a mapping with a 'type'"),
        (["trackers=tensorboard"], "'trackers' must be a list"),
        (["steps=[1"], "could not read the value"),
        (["algorithm=a2c"], "'algorithm' must be one of 'ppo', 'grpo', 'rloo'"),
        (["algorithm=grpo"], "algorithm 'grpo' measures each sample against its idea's others already"),
        (["algorithm=rloo", "samples_per_idea=1", "rewards.baseline=none"], "set samples_per_idea >= 2"),
        (["grpo.loss_type=sum"], "'grpo.loss_type' must be one of"),
        (["grpo.scale_rewards=idea"], "'grpo.scale_rewards' must be one of"),
        (["rloo.beta=-1"], "'rloo.beta' must be at least 0.0"),
        (["generation.chat=true"], "'sft.enabled' and 'generation.chat' are both on"),
    ],
)
def test_cli_refuses_in_one_line_before_writing_anything(tmp_path, capsys, overrides, message):
    out = tmp_path / "run"
    args = [
        "train",
        "--preset",
        "tiny",
        "--output-dir",
        str(out),
        *sum((["--set", o] for o in overrides), []),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("promptrl train: error: ") and message in err, err
    assert list(tmp_path.iterdir()) == []  # no run dir, nothing else


def test_malformed_yaml_names_the_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: 3\nppo:\n  lr: [1e-4\n")
    assert main(["train", "--config", str(bad), "--output-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"Config file {bad} is not valid YAML at line 4" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_render_and_generate_refuse_bad_numbers_and_huge_ideas(tmp_path, capsys):
    assert (
        main(
            [
                "render",
                "--pipeline",
                "tiny:pipeline",
                "--steps",
                "0",
                "--out",
                str(tmp_path / "r"),
                "a cat",
            ]
        )
        == 2
    )
    assert "'render.num_inference_steps' must be between 1 and 1000" in capsys.readouterr().err
    assert main(["generate", "--model", str(tmp_path), "x" * 100_000]) == 2
    assert "characters long" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
