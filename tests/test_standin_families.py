"""The image-model families of the stand-in hub (promptrl/standins/families.py), loaded offline
by their real repository ids through diffusers' own hub code, and rendered at 64x64."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from promptrl.standins.families import FAMILIES, FAMILY_REPOS, LATENT_CHANNELS, TAESD_REPOS, build_family_hub
from promptrl.standins.hub import standin_env
from promptrl.standins.hubcache import repo_dir

PROMPTS = ["a red cat on a mat", "a castle in the clouds at sunset, oil painting"]
PIPELINES = {
    "sdxl": "StableDiffusionXLPipeline",
    "sd3": "StableDiffusion3Pipeline",
    "flux": "FluxPipeline",
    "pixart": "PixArtSigmaPipeline",
    "sana": "SanaPipeline",
}
# (attribute, tokenizer class, length, model_max_length) per family, as the real repos' configs say.
CLIP = ("CLIPTokenizer", 49408, 77)
T5 = ("T5Tokenizer", 32100, 512)
TOKENIZERS = {
    "sdxl": {"tokenizer": CLIP, "tokenizer_2": CLIP},
    "sd3": {"tokenizer": CLIP, "tokenizer_2": CLIP, "tokenizer_3": T5},
    "flux": {"tokenizer": CLIP, "tokenizer_2": T5},
    "pixart": {"tokenizer": T5},
    "sana": {"tokenizer": ("GemmaTokenizer", 256000, int(1e30))},
}


@pytest.fixture(scope="module")
def family_hub(tmp_path_factory):
    """`HF_HOME` of a stand-in hub holding every family and every TAESD decoder."""
    return build_family_hub(tmp_path_factory.mktemp("families"), ("sd", *FAMILIES))


@pytest.fixture(scope="module")
def load(family_hub):
    from diffusers import AutoPipelineForText2Image

    def load(family: str, **kwargs):
        return AutoPipelineForText2Image.from_pretrained(FAMILY_REPOS[family], cache_dir=family_hub / "hub", **kwargs)

    return load


@pytest.mark.parametrize("family", FAMILIES)
def test_family_loads_by_hub_name_and_renders(load, family, one_thread):
    pipe = load(family)
    assert type(pipe).__name__ == PIPELINES[family]
    # PixArt-Sigma and Sana snap sizes to their training resolutions unless told not to.
    binning = {"use_resolution_binning": False} if family in ("pixart", "sana") else {}
    images = pipe(
        PROMPTS,
        height=64,
        width=64,
        num_inference_steps=2,
        output_type="pt",
        generator=torch.Generator().manual_seed(0),
        **binning,
    ).images
    assert images.shape == (2, 3, 64, 64)
    assert torch.isfinite(images).all()
    assert pipe.vae.config.latent_channels == LATENT_CHANNELS[family]


@pytest.mark.parametrize("family", FAMILIES)
def test_family_tokenizers_are_the_real_kinds(load, family):
    pipe = load(family)
    for attribute, (cls, length, limit) in TOKENIZERS[family].items():
        tokenizer = getattr(pipe, attribute)
        assert type(tokenizer).__name__ == cls, attribute
        assert (len(tokenizer), tokenizer.model_max_length) == (length, limit), attribute
        ids = tokenizer(PROMPTS[1]).input_ids
        assert 8 <= len(ids) <= 16, (attribute, ids)  # whole words, not characters
    if family == "sana":
        assert pipe.tokenizer(PROMPTS[0]).input_ids[0] == pipe.tokenizer.bos_token_id


def test_clip_tokenizers_count_as_stable_diffusion(load):
    """The CLIP tokenizers are the real BPE: 'a red cat on a mat' is 6 words, 8 tokens with
    <|startoftext|> (49406) and <|endoftext|> (49407)."""
    pipe = load("sdxl")
    assert pipe.tokenizer(PROMPTS[0]).input_ids == [49406, 320, 736, 2368, 525, 320, 9063, 49407]
    assert pipe.tokenizer_2.pad_token == "!" and pipe.tokenizer.pad_token == "<|endoftext|>"


@pytest.mark.parametrize("family, component", [("sdxl", "unet"), ("sd3", "text_encoder_3"), ("sana", "transformer")])
def test_fp16_variant_loads_where_the_real_repo_has_one(load, family, component, one_thread):
    pipe = load(family, variant="fp16", dtype=torch.float16)
    assert getattr(pipe, component).dtype == torch.float16
    if family == "sdxl":  # fp16 matmuls on CPU are slow; one family shows they render
        images = pipe(PROMPTS, height=64, width=64, num_inference_steps=1, output_type="pt").images
        assert images.shape == (2, 3, 64, 64) and torch.isfinite(images).all()


@pytest.mark.parametrize(
    "family, component, shards",
    [
        ("flux", "transformer", 3),
        ("flux", "text_encoder_2", 2),
        ("sd3", "text_encoder_3", 2),
        ("sana", "text_encoder", 2),
    ],
)
def test_sharded_components_as_published(family_hub, family, component, shards):
    folder = repo_dir(family_hub / "hub", FAMILY_REPOS[family]) / component
    for index in folder.glob("*.safetensors.index*.json"):  # the full and (where published) fp16 set
        files = set(json.loads(index.read_text())["weight_map"].values())
        assert len(files) == shards and all((folder / f).exists() for f in files)
    assert not list(folder.glob("*[a-z].safetensors")), "an unsharded copy beside the shards"


@pytest.mark.parametrize("family", sorted(TAESD_REPOS))
def test_taesd_decodes_its_family_latents(family_hub, family):
    from diffusers import AutoencoderTiny

    taesd = AutoencoderTiny.from_pretrained(TAESD_REPOS[family], cache_dir=family_hub / "hub")
    latents = torch.randn(2, LATENT_CHANNELS[family], 8, 8)  # a 64x64 image's latents (8x down)
    with torch.no_grad():
        images = taesd.decode(latents).sample
    assert images.shape == (2, 3, 64, 64) and torch.isfinite(images).all()


def test_hf_home_alone_resolves_every_family(family_hub, tmp_path):
    """In a fresh process that only has `HF_HOME` and `HF_HUB_OFFLINE=1`, as on Colab."""
    code = (
        "import json; from diffusers import AutoPipelineForText2Image, AutoencoderTiny\n"
        "from promptrl.standins.families import FAMILY_REPOS, TAESD_REPOS, FAMILIES\n"
        "out = {f: type(AutoPipelineForText2Image.from_pretrained(FAMILY_REPOS[f])).__name__ for f in FAMILIES}\n"
        "out['taesd'] = [AutoencoderTiny.from_pretrained(r).config.latent_channels for r in TAESD_REPOS.values()]\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**standin_env(family_hub), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {**PIPELINES, "taesd": [4, 4, 16, 16]}


def test_a_built_hub_without_a_requested_family_is_refused(tmp_path, monkeypatch):
    from promptrl.errors import UsageError
    from promptrl.standins import hub

    (tmp_path / "STANDIN").write_text(json.dumps({"size": "small", "families": ["flux"]}))
    monkeypatch.setattr(hub, "vit_l_14_weights", lambda cache=None: None)  # not needed to refuse
    assert hub.build_standin_hub(tmp_path, families=("flux",)) == tmp_path
    with pytest.raises(UsageError, match=r"without the families \['sana'\]"):
        hub.build_standin_hub(tmp_path, families=("flux", "sana"))
