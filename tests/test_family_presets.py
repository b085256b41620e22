"""Each family preset (`sdxl-turbo`, `sd3.5-medium`, `flux-schnell`, `pixart-sigma`, `sana-600m`)
names its real repository, writes prompts no longer than its encoder reads, and takes only
options its family's pipeline accepts: checked against the stand-in repository of that name."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from promptrl.config import get_preset
from promptrl.families import FAMILIES
from promptrl.presets import FAMILY_RENDER
from promptrl.render_config import check_family_options, check_pipeline_options
from promptrl.rendering import load_pipeline, pipeline_family
from promptrl.standins.families import FAMILY_REPOS, build_family_hub
from promptrl.standins.hubcache import repo_dir

FAMILY_OF_PRESET = {
    "sdxl-turbo": "sdxl",
    "sd3.5-medium": "sd3",
    "flux-schnell": "flux",
    "pixart-sigma": "pixart",
    "sana-600m": "sana",
}
SPECIAL_TOKENS = 2  # at most: a start and an end token (T5 adds </s>, Gemma <bos>, CLIP both)


def test_every_family_preset_is_checked_here():
    assert set(FAMILY_RENDER) == set(FAMILY_OF_PRESET)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    return build_family_hub(tmp_path_factory.getbasetemp() / "family-hub", tuple(FAMILY_OF_PRESET.values()))


@pytest.mark.parametrize("preset", sorted(FAMILY_OF_PRESET))
def test_a_family_preset_fits_its_pipeline(hub, preset, one_thread):
    config = get_preset(preset)
    family = FAMILIES[FAMILY_OF_PRESET[preset]]
    assert config.render.pipeline == FAMILY_REPOS[family.name]
    local = str(repo_dir(hub / "hub", config.render.pipeline))
    assert pipeline_family(local) == family

    # The policy's prompt fits what the family's encoder reads.
    read = config.render.max_sequence_length or family.max_sequence_length or 77
    room = read - family.instruction_tokens - SPECIAL_TOKENS
    assert 0 < config.generation.max_new_tokens <= room, (config.generation.max_new_tokens, room)
    if family.encoder != "CLIP":
        assert config.generation.max_new_tokens > 77  # the point of a long encoder: longer prompts
        # ... which the length penalty lets it write (about 3 words per 4 tokens)
        (penalty,) = [t for t in config.rewards.terms if t["type"] == "penalty"]
        assert penalty["max_words"] >= 0.7 * config.generation.max_new_tokens

    # Distilled models render without guidance in a few steps; the others with guidance.
    distilled = preset in ("sdxl-turbo", "flux-schnell")
    assert (config.render.guidance_scale == 0) == distilled
    assert (config.render.num_inference_steps <= 4) == distilled

    # The options are ones the family takes, at the preset's size, on the pipeline itself.
    render = dataclasses.replace(config.render, pipeline=local)
    check_family_options(render, family, torch.device("cpu"))
    if family.name == "sd3":  # T5 can be dropped from the preset as it is (CLIP then reads 77 tokens)
        check_family_options(dataclasses.replace(render, drop_t5=True), family, torch.device("cpu"))
    pipeline = load_pipeline(local, torch.float32)
    check_pipeline_options(render, family, pipeline)
