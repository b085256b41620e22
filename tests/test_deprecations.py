"""Deprecation warnings that promptrl's own calls and stand-in models would trigger stay fixed."""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from pathlib import Path

import pytest
from conftest import byte_tokenizer

import promptrl
from promptrl.rendering import RenderConfig, Renderer
from promptrl.standins.tiny import build_tiny_pipeline

PACKAGE = Path(promptrl.__file__).resolve().parent


def test_tiny_pipeline_builds_loads_and_renders_without_future_warnings(tmp_path):
    """diffusers warns (FutureWarning) about a scheduler whose `steps_offset` is not 1, and
    corrects it in the pipeline it builds: the tiny pipeline asks for 1 itself."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = build_tiny_pipeline(tmp_path / "pipeline")
        renderer = Renderer(RenderConfig(pipeline=path, height=64, width=64, guidance_scale=3.0))
        renderer(["a lighthouse in a storm"])
    future = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
    assert future == []
    assert json.loads((Path(path) / "scheduler" / "scheduler_config.json").read_text())["steps_offset"] == 1


@contextlib.contextmanager
def deprecations_we_call():
    """Collect the deprecation warnings that an API promptrl calls raises about that call.

    The libraries point their warnings at their own lines (`stacklevel`), so the warning's
    file says nothing; instead each `warnings.warn` looks at its callers: a deprecation raised
    within two library frames of a promptrl line is that line's. One raised deeper (a library
    calling its own deprecated API, e.g. peft reading `is_gradient_checkpointing`) is not ours.
    """
    found, real = [], warnings.warn

    def warn(message, category=None, stacklevel=1, source=None, **kwargs):
        kind = category or (type(message) if isinstance(message, Warning) else UserWarning)
        if issubclass(kind, (DeprecationWarning, FutureWarning)):
            frame = sys._getframe(1)
            for _ in range(3):  # the deprecated function, maybe a decorator's wrapper, then the caller
                if frame is None:
                    break
                where = Path(frame.f_code.co_filename).resolve()
                if PACKAGE in where.parents:
                    found.append(f"{where.name}:{frame.f_lineno}: {message}")
                    break
                frame = frame.f_back
        return real(message, category, stacklevel + 1, source, **kwargs)

    warnings.warn = warn
    try:
        yield found
    finally:
        warnings.warn = real


@pytest.mark.parametrize("arch", ["gpt2", "bloom"])
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_our_own_calls_raise_no_deprecation_warnings(arch, lora, request, lora_config, tmp_path):
    """The suite ignores deprecation warnings (the libraries' own are not ours to fix); this
    runs the model, sampling and PPO paths with every warning recorded and fails on one
    raised at a line of promptrl: a call of ours that a coming release will break."""
    import torch

    from promptrl import PPOConfig, PPOTrainer, ValueHeadModel
    from promptrl.ppo.sampling import PromptGenerationConfig, PromptGenerator

    lm_dir, tokenizer = request.getfixturevalue(f"{arch}_dir"), byte_tokenizer()
    with deprecations_we_call() as ours:
        model = ValueHeadModel.from_pretrained(lm_dir, peft_config=lora_config(arch) if lora else None)
        model.gradient_checkpointing_enable()
        generator = PromptGenerator(model, tokenizer, PromptGenerationConfig(template="{idea}:", max_new_tokens=4))
        rollout = generator(["a fox", "a lighthouse"], record=True)
        config = PPOConfig(batch_size=2, mini_batch_size=2, ppo_epochs=1)
        trainer = PPOTrainer(model, None, tokenizer, config=config)
        trainer.step(rollout.queries, rollout.responses, torch.tensor([1.0, 0.0]), rollout.recorded)
        model.save_pretrained(tmp_path / "saved")
        ValueHeadModel.from_pretrained(tmp_path / "saved")
    assert ours == []
