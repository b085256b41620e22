"""Every image family through the one `Renderer`: prompt limits counted by the encoder that reads
the prompt, each family's option errors, the TAESD preview decoder, and two training steps plus
`promptrl eval` per family, on the stand-in hub's tiny pipelines (promptrl/standins/families.py)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
import torch

from promptrl.errors import UsageError
from promptrl.rendering import RenderConfig, Renderer
from promptrl.standins.families import FAMILIES, FAMILY_REPOS, TAESD_REPOS, build_family_hub
from promptrl.standins.hub import standin_env
from promptrl.standins.hubcache import repo_dir

# family -> (pipeline class, encoder, token limit with the family's defaults)
READERS = {
    "sdxl": ("StableDiffusionXLPipeline", "CLIP", 77),
    "sd3": ("StableDiffusion3Pipeline", "T5", 256),
    "flux": ("FluxPipeline", "T5", 512),
    "pixart": ("PixArtSigmaPipeline", "T5", 300),
    "sana": ("SanaPipeline", "Gemma", 299),  # 300 less the join of Sana's built-in instruction
}
WORDS = "a castle in the clouds at sunset oil painting with golden light".split()


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    return build_family_hub(tmp_path_factory.getbasetemp() / "family-hub", ("sd", *FAMILIES))


@pytest.fixture(scope="module")
def local(hub):
    """family -> the local snapshot of its stand-in repository (the hub name's files)."""
    return {f: str(repo_dir(hub / "hub", FAMILY_REPOS[f])) for f in FAMILIES}


def render_config(local, family, **kwargs) -> RenderConfig:
    return RenderConfig(
        **{"pipeline": local[family], "height": 64, "width": 64, "chunk_size": 4, "device": "cpu", **kwargs}
    )


def long_prompt(n_words: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(n_words))


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_counts_prompts_with_the_encoder_that_reads_them(local, family, one_thread, caplog):
    cls, encoder, limit = READERS[family]
    renderer = Renderer(render_config(local, family, num_inference_steps=1))
    assert type(renderer.pipeline).__name__ == cls and renderer.family.name == family
    assert (renderer.encoder, renderer.max_prompt_tokens) == (encoder, limit)

    # 100 words: past CLIP's 77 tokens, inside T5's and Gemma's limits.
    prompts = [long_prompt(100), "a red cat"]
    counts = renderer._n_tokens(prompts)
    assert counts[0] > 77
    diffusers_says = logging.getLogger(type(renderer.pipeline).__module__)
    said: list[str] = []
    heard = logging.Handler()
    heard.emit = lambda record: said.append(record.getMessage())
    diffusers_says.addHandler(heard)
    try:
        with caplog.at_level(logging.WARNING, logger="promptrl"):
            out = renderer(prompts, ideas=["castle", "cat"])
    finally:
        diffusers_says.removeHandler(heard)
    assert out.images.shape == (2, 3, 64, 64) and torch.isfinite(out.images).all()
    assert out.truncated == [encoder == "CLIP", False]
    # SD3's and FLUX's CLIP encoders read the first 77 tokens by design: diffusers' warning is quiet
    assert not [m for m in said if "CLIP can only handle" in m]
    if encoder == "CLIP":
        assert "CLIP encoder's limit of 77 tokens" in caplog.text
        assert renderer._n_tokens([out.prompts[0]])[0] <= 77 < renderer._n_tokens([out.prompts[0] + " castle"])[0]

    # Past the long encoders too: cut at their own limit, and the log names the encoder.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="promptrl"):
        out = renderer([long_prompt(700)], ideas=["castle"])
    assert out.truncated == [True] and renderer._n_tokens(out.prompts)[0] <= limit
    assert f"{encoder} encoder's limit of {limit} tokens" in caplog.text


def test_max_sequence_length_is_the_limit_and_reaches_the_pipeline(local, one_thread):
    renderer = Renderer(render_config(local, "flux", max_sequence_length=64, num_inference_steps=1))
    assert renderer.max_prompt_tokens == 64 and renderer.call_options(2)["max_sequence_length"] == 64


def test_sd3_without_t5_reads_prompts_with_clip(local, one_thread):
    renderer = Renderer(render_config(local, "sd3", drop_t5=True, num_inference_steps=1))
    assert renderer.pipeline.text_encoder_3 is None
    assert (renderer.encoder, renderer.max_prompt_tokens) == ("CLIP", 77)
    assert "max_sequence_length" not in renderer.call_options(1)
    assert renderer(["a red cat"], ideas=["cat"]).images.shape == (1, 3, 64, 64)


@pytest.mark.parametrize(
    "family, options, key",
    [
        ("flux", {"negative_prompt": "blurry", "guidance_scale": 3.5}, "render.negative_prompt"),
        ("sdxl", {"negative_prompt": "blurry"}, "render.negative_prompt"),  # guidance 0: nothing to steer
        ("flux", {"guidance_scale": 3.5}, "render.guidance_scale"),  # schnell is guidance-distilled
        ("flux", {"height": 72}, "render.height"),  # FLUX: multiples of 16
        ("sana", {"width": 48}, "render.width"),  # Sana's DC-AE: multiples of 32
        ("sdxl", {"max_sequence_length": 128}, "render.max_sequence_length"),  # CLIP only
        ("sd3", {"max_sequence_length": 128, "drop_t5": True}, "render.max_sequence_length"),
        ("pixart", {"drop_t5": True}, "render.drop_t5"),
        ("flux", {"offload": "model"}, "render.offload"),  # no CUDA here
        ("sana", {"vae": "taesd"}, "render.vae"),  # no TAESD for DC-AE latents
    ],
)
def test_an_option_the_family_cannot_take_is_a_one_line_error_naming_the_key(local, family, options, key):
    with pytest.raises(UsageError, match=key.replace(".", r"\.")) as err:
        Renderer(render_config(local, family, **options))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("family", ["sdxl", "sd3", "flux"])
def test_the_preview_decoder_renders_training_images_and_eval_decodes_in_full(hub, local, family, one_thread):
    taesd = str(repo_dir(hub / "hub", TAESD_REPOS[family]))  # the hub name's files
    renderer = Renderer(render_config(local, family, num_inference_steps=1, vae="taesd", preview_decoder=taesd))
    assert type(renderer.preview_vae).__name__ == "AutoencoderTiny"
    # the pipeline's unscaling before decode is the identity for TAESD, which reads the latents as they are
    assert (renderer.preview_vae.config.scaling_factor, renderer.preview_vae.config.shift_factor) == (1.0, 0.0)
    prompts, ideas = ["a red cat", "a blue dog"], ["cat", "dog"]
    preview = renderer(prompts, ideas=ideas).images
    full = renderer(prompts, ideas=ideas, preview=False).images
    assert preview.shape == full.shape == (2, 3, 64, 64)
    assert not torch.allclose(preview, full)  # two decoders (random stand-ins: only the path is shown)
    assert renderer.pipeline.vae is renderer.full_vae  # put back after every call
    plain = Renderer(render_config(local, family, num_inference_steps=1))
    assert torch.allclose(plain(prompts, ideas=ideas).images, full, atol=1e-5)
    with pytest.raises(UsageError, match="render.vae: taesd"):
        plain(prompts, ideas=ideas, preview=True)


def small_overrides(out, family, local) -> list[str]:
    """The tiny preset (tiny policy and CLIP scorer) rendering with `family`, two steps."""
    return [
        f"output_dir={out}",
        f"render.pipeline={local[family]}",
        "render.height=64",
        "render.width=64",
        "render.guidance_scale=0",
        "render.num_inference_steps=1",
        "sft.enabled=false",
        "ppo.batch_size=4",
        "ppo.mini_batch_size=2",
        "ppo.forward_batch_size=4",
        "samples_per_idea=2",
        "steps=2",
        "save_every=0",
        "image_every=0",
        "eval.heldout=2",
        "eval.samples=1",
        "eval.every=0",
        "trackers=[]",
        "progress=false",
        "generation.max_new_tokens=8",
    ]


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_trains_two_steps_and_evaluates(tmp_path, local, family, one_thread):
    from promptrl import PromptTrainer
    from promptrl.config import load_config
    from promptrl.eval import evaluate_model

    config = load_config("tiny", None, small_overrides(tmp_path / "run", family, local))
    history = PromptTrainer(config).train()
    assert len(history) == 2 and all(torch.isfinite(torch.tensor(row["reward/total/mean"])) for row in history)
    result, out = evaluate_model(str(tmp_path / "run"), samples=1, progress=False)
    assert (out / "eval.json").exists() and result


def test_a_family_trains_by_its_hub_name_from_the_command_line(hub, tmp_path):
    """`promptrl train` in a fresh process that has only the stand-in hub's environment."""
    overrides = small_overrides(tmp_path / "run", "flux", {"flux": FAMILY_REPOS["flux"]})
    args = [a for o in overrides for a in ("--set", o)]
    proc = subprocess.run(
        [sys.executable, "-m", "promptrl", "train", "--preset", "tiny", *args],
        env={**os.environ, **standin_env(hub)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "run" / "model").exists()


@pytest.mark.parametrize("family", ["sdxl", "sd3", "pixart"])
def test_a_negative_prompt_reaches_every_chunk_also_a_short_last_one(local, family, one_thread):
    """Three prompts in chunks of two: the last call renders one, with one negative prompt."""
    options = {"num_inference_steps": 1, "guidance_scale": 2.0, "chunk_size": 2, "negative_prompt": "blurry"}
    renderer = Renderer(render_config(local, family, **options))
    out = renderer(["a red cat", "a blue dog", "a green owl"], ideas=["cat", "dog", "owl"])
    assert out.images.shape == (3, 3, 64, 64) and torch.isfinite(out.images).all()


@pytest.mark.parametrize("family", ["pixart", "sana"])
def test_lowercasing_pipelines_are_counted_as_they_read(local, family, one_thread):
    """PixArt and Sana lowercase a prompt before their tokenizer reads it: counted the same way."""
    renderer = Renderer(render_config(local, family, num_inference_steps=1))
    assert renderer._n_tokens(["A CASTLE IN THE CLOUDS"]) == renderer._n_tokens(["a castle in the clouds"])
    assert (
        renderer.tokenizer("A CASTLE IN THE CLOUDS").input_ids != renderer.tokenizer("a castle in the clouds").input_ids
    )
