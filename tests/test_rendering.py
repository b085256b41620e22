"""Renderer: fixed seeds, batching equal to one-by-one rendering, visible truncation."""

from __future__ import annotations

import logging

import pytest
import torch

from promptrl.rendering import RenderConfig, Renderer, idea_seed, load_pipeline
from promptrl.standins.tiny import tiny_assets

PROMPTS = [
    "a lighthouse in a storm",
    "an old fox reading by candlelight",
    "a misty pine forest at dawn",
    "a desert canyon at sunset",
    "a frozen lake under northern lights",
    "a lighthouse in a storm, oil painting",
]


@pytest.fixture(scope="module")
def pipeline_dir():
    """The tiny pipeline in this session's cache (conftest.tiny_cache)."""
    return tiny_assets()["pipeline"]


def config(pipeline_dir, **overrides) -> RenderConfig:
    settings = dict(pipeline=pipeline_dir, height=64, width=64, chunk_size=4, device="cpu")
    return RenderConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def renderer(pipeline_dir):
    """Loaded from the saved local directory, as users load a hub pipeline."""
    return Renderer(config(pipeline_dir))


def test_images_shape_and_range(renderer):
    out = renderer(PROMPTS[:3])
    assert out.images.shape == (3, 3, 64, 64) and out.images.dtype == torch.float32
    assert out.images.min() >= 0 and out.images.max() <= 1
    assert out.prompts == PROMPTS[:3] and out.truncated == [False] * 3 and out.pil is None
    assert out.images.std() > 0.01  # not a blank image


def test_fixed_seeds_reproduce_images(renderer):
    a = renderer(PROMPTS[:2], seeds=[1, 2])
    b = renderer(PROMPTS[:2], seeds=[1, 2])
    c = renderer(PROMPTS[:2], seeds=[3, 2])
    assert torch.equal(a.images, b.images)
    assert not torch.allclose(a.images[0], c.images[0]) and torch.equal(a.images[1], c.images[1])


def test_batched_call_equals_one_by_one(renderer):
    ideas = PROMPTS[:5] + PROMPTS[:1]
    batched = renderer(PROMPTS, ideas=ideas)  # chunks of 4 and 2
    singles = [renderer([p], ideas=[i]) for p, i in zip(PROMPTS, ideas)]
    assert batched.seeds == [s.seeds[0] for s in singles]
    torch.testing.assert_close(batched.images, torch.cat([s.images for s in singles]), atol=2e-3, rtol=0)


def test_long_prompt_is_truncated_with_a_warning(renderer, caplog):
    long_prompt = " ".join(f"word{i}" for i in range(100))
    with caplog.at_level(logging.WARNING, logger="promptrl"):
        out = renderer([PROMPTS[0], long_prompt])
    assert out.truncated == [False, True]
    assert out.prompts[0] == PROMPTS[0]
    assert long_prompt.startswith(out.prompts[1]) and len(out.prompts[1]) < len(long_prompt)
    assert len(renderer.tokenizer(out.prompts[1]).input_ids) <= 77
    # the cut is as long as it can be: one more word would not fit
    one_more = " ".join(long_prompt.split()[: len(out.prompts[1].split()) + 1])
    assert len(renderer.tokenizer(one_more).input_ids) > 77
    warnings = [r for r in caplog.records if r.name == "promptrl"]
    assert len(warnings) == 1 and "1 of 2 prompts" in warnings[0].getMessage()


def test_max_prompt_tokens_setting(pipeline_dir, renderer):
    short = Renderer(config(pipeline_dir, max_prompt_tokens=8), pipeline=renderer.pipeline)
    prompts, cut = short.fit_prompts(["one two three four five six seven eight nine", "a fox"])
    assert cut == [True, False] and prompts == ["one two three four five six", "a fox"]
    with pytest.raises(ValueError, match="max_prompt_tokens"):
        Renderer(config(pipeline_dir, max_prompt_tokens=100), pipeline=renderer.pipeline)


def test_seed_modes(pipeline_dir, renderer):
    ideas = ["a fox", "a lighthouse", "a fox"]
    seeds = renderer.seeds_for(3, ideas)
    assert seeds[0] == seeds[2] != seeds[1]
    assert seeds == renderer.seeds_for(3, ideas)  # same idea, same seed, every step
    assert idea_seed(0, "a fox") == idea_seed(0, "a fox") != idea_seed(1, "a fox")
    out = renderer(["a red fox", "a blue fox", "a lighthouse"], ideas=ideas)
    assert out.seeds == seeds

    slot = Renderer(config(pipeline_dir, seed=10, seed_mode="slot"), pipeline=renderer.pipeline)
    assert slot.seeds_for(3) == [10, 11, 12]
    rand = Renderer(config(pipeline_dir, seed_mode="random"), pipeline=renderer.pipeline)
    assert rand.seeds_for(4) != rand.seeds_for(4)
    with pytest.raises(ValueError, match="seed_mode"):
        Renderer(config(pipeline_dir, seed_mode="nope"), pipeline=renderer.pipeline)


def test_pipeline_object_gives_same_images_as_path(pipeline_dir, renderer):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(pipeline_dir)
    by_object = Renderer(RenderConfig(height=64, width=64), pipeline=pipe)
    assert by_object.device == torch.device("cpu")
    torch.testing.assert_close(by_object(PROMPTS[:2]).images, renderer(PROMPTS[:2]).images)


def test_load_pipeline_in_half_precision_without_fp16_files(pipeline_dir):
    pipe = load_pipeline(pipeline_dir, torch.float16)
    assert pipe.unet.dtype == torch.float16 and pipe.text_encoder.dtype == torch.float16
    assert pipe.safety_checker is None


def test_return_pil(renderer):
    out = renderer(PROMPTS[:2], return_pil=True)
    assert [im.size for im in out.pil] == [(64, 64), (64, 64)]
    first = torch.tensor(list(out.pil[0].getdata()), dtype=torch.float32) / 255
    torch.testing.assert_close(first.T.reshape(3, 64, 64), out.images[0], atol=1 / 255, rtol=0)


def test_bad_inputs(renderer):
    with pytest.raises(ValueError, match="empty"):
        renderer([])
    with pytest.raises(TypeError, match="list of prompts"):
        renderer("a fox")
    with pytest.raises(ValueError, match="ideas"):
        renderer(["a fox", "a cat"], ideas=["a fox"])
    with pytest.raises(ValueError, match="seeds"):
        renderer(["a fox"], seeds=[1, 2])
