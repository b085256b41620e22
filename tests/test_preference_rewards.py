"""PickScore and HPSv2.1 reward types on their tiny stand-ins, against direct computations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from promptrl.rewards import (
    ClipModel,
    HPSReward,
    PickScoreReward,
    TransformersClip,
    build_reward,
    score,
)
from promptrl.rewards.preference import hps_clip
from promptrl.standins.tiny import tiny_assets

IDEAS = ["a lighthouse in a storm", "a fox", "a forest"]
PROMPTS = ["a lighthouse in a storm, oil painting", "a red fox, watercolor", "a misty forest"]


@pytest.fixture(scope="module")
def assets():
    return tiny_assets()


@pytest.fixture
def images():
    """Smooth images whose values are whole multiples of 1/255, so a PIL round trip is exact."""
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    return (F.interpolate(x, size=64, mode="bilinear") * 255).round() / 255


def _pil(images):
    from PIL import Image

    arr = (images * 255).round().byte().permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(a) for a in arr]


def test_pickscore_equals_direct_computation(assets, images):
    from transformers import AutoProcessor, CLIPModel

    reward = build_reward(
        [{"type": "pickscore"}],
        device="cpu",
        pickscore_model=assets["pickscore"],
        pickscore_processor=None,
    ).terms["pickscore"][1]
    assert isinstance(reward, PickScoreReward)
    # PickScore's reference recipe: processor on PIL images and texts, projected features,
    # normalised, logit_scale.exp() * cosine
    model = CLIPModel.from_pretrained(assets["pickscore"]).eval()
    processor = AutoProcessor.from_pretrained(assets["pickscore"])

    def direct(pixels):
        with torch.no_grad():
            inputs = processor(text=IDEAS, padding=True, return_tensors="pt")
            img = model.get_image_features(pixel_values=pixels).pooler_output
            txt = model.get_text_features(**inputs).pooler_output
            return model.logit_scale.exp() * (F.normalize(img, dim=-1) * F.normalize(txt, dim=-1)).sum(-1)

    out = reward(images, PROMPTS, IDEAS)
    assert out.shape == (3,)
    float_pixels = processor(images=images, do_rescale=False, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(out, direct(float_pixels))
    # From PIL the processor resizes 8-bit pixels and rounds (0.015 at most after normalising,
    # measured); the score moves by about 0.1%.
    pil_pixels = processor(images=_pil(images), return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(out, direct(pil_pixels), atol=0, rtol=5e-3)
    against_prompt = PickScoreReward(reward.clip, against="prompt")(images, PROMPTS, IDEAS)
    assert not torch.allclose(against_prompt, out)


def test_hps_equals_direct_computation(assets, images):
    import open_clip

    reward = build_reward(
        [{"type": "hps"}],
        device="cpu",
        hps_model=assets["clip_model_name"],
        hps_weights=assets["hps_weights"],
    ).terms["hps"][1]
    assert isinstance(reward, HPSReward)
    # HPSv2's recipe: the checkpoint's state_dict into the open_clip model, then the diagonal of
    # normalised image features @ normalised text features
    state = torch.load(assets["hps_weights"], map_location="cpu", weights_only=True)["state_dict"]
    model = open_clip.create_model(assets["clip_model_name"], pretrained=None).eval()
    model.load_state_dict(state)
    tokenizer = open_clip.get_tokenizer(assets["clip_model_name"])
    with torch.no_grad():
        img = F.normalize(model.encode_image(reward.clip.preprocess(images)), dim=-1)
        txt = F.normalize(model.encode_text(tokenizer(IDEAS)), dim=-1)
        expected = (img @ txt.T).diagonal()
    torch.testing.assert_close(reward(images, PROMPTS, IDEAS), expected)
    # not the plain tiny CLIP: the checkpoint was loaded
    plain = ClipModel.shared(assets["clip_model_name"], assets["clip_pretrained"], device="cpu")
    assert not torch.allclose(plain.image_embeddings(images), reward.clip.image_embeddings(images))


def test_hps_checkpoint_with_objects_is_not_unpickled(assets, tmp_path):
    state = torch.load(assets["hps_weights"], weights_only=True)

    class Payload:
        def __reduce__(self):
            return (print, ("unpickled!",))

    torch.save({**state, "extra": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="will not be unpickled"):
        hps_clip(assets["clip_model_name"], str(tmp_path / "evil.pt"), device="cpu")


def test_rewards_on_one_clip_share_one_image_forward(assets, images, monkeypatch):
    reward = build_reward(
        [{"type": "aesthetic"}, {"type": "similarity"}],
        device="cpu",
        clip_model_name=assets["clip_model_name"],
        clip_pretrained=assets["clip_pretrained"],
        aesthetic_weights=assets["aesthetic_weights"],
    )
    clip = reward.terms["aesthetic"][1].clip
    assert reward.terms["similarity"][1].clip is clip
    calls = []
    encode = clip.model.encode_image
    monkeypatch.setattr(clip.model, "encode_image", lambda x: calls.append(len(x)) or encode(x))
    first = score(reward, images, PROMPTS, IDEAS)[1]
    assert calls == [3]  # aesthetic and similarity: one forward
    other = images.clone()
    score(reward, other, PROMPTS, IDEAS)
    assert calls == [3, 3]  # a new batch is embedded anew
    other.mul_(0.5)  # changed in place: stale embeddings must not be reused
    changed = score(reward, other, PROMPTS, IDEAS)[1]
    assert calls == [3, 3, 3] and not torch.allclose(changed["aesthetic"], first["aesthetic"])


def test_pickscore_judge_and_reward_share_the_model(assets, images):
    a = TransformersClip.shared(assets["pickscore"], None, device="cpu")
    reward = build_reward(
        [{"type": "pickscore", "weight": 1.0}],
        device="cpu",
        pickscore_model=assets["pickscore"],
        pickscore_processor=None,
    )
    assert reward.terms["pickscore"][1].clip is a


def test_a_run_can_train_on_pickscore(tmp_path):
    from promptrl.config import load_config
    from promptrl.trainer import PromptTrainer

    settings = [
        "sft.enabled=false",
        "steps=1",
        "ppo.batch_size=4",
        "ppo.mini_batch_size=2",
        "ppo.forward_batch_size=4",
        "samples_per_idea=2",
        "trackers=[]",
        "progress=false",
        "generation.max_new_tokens=8",
        "save_every=0",
        "image_every=0",
        "eval_ideas=1",
        "eval.heldout=0",
        "rewards.terms=[{type: pickscore}, {type: hps, weight: 10}]",
    ]
    history = PromptTrainer(load_config("tiny", None, [f"output_dir={tmp_path}", *settings])).train()
    row = history[0]
    # the tiny preset's stand-ins, found through rewards.pickscore_model / rewards.hps_weights
    expected = row["reward/pickscore/mean"] + 10 * row["reward/hps/mean"]
    assert row["reward/total/mean"] == pytest.approx(expected, rel=1e-5)


def test_missing_preference_models_fail_in_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="rewards.pickscore_model") as info:
        build_reward([{"type": "pickscore"}], device="cpu", pickscore_model="nobody-here/no-model")
    assert "\n" not in str(info.value)
    with pytest.raises(FileNotFoundError, match="not found"):
        build_reward([{"type": "hps"}], device="cpu", hps_weights=str(tmp_path / "missing.pt"))


def test_half_precision_follows_the_dtype(assets, images):
    """The dtype path a GPU takes (fp16 there; bf16 here, which the CPU supports)."""
    full = TransformersClip.shared(assets["pickscore"], None, device="cpu", dtype="fp32")
    half = TransformersClip.shared(assets["pickscore"], None, device="cpu", dtype="bf16")
    assert half is not full and half.model.dtype == torch.bfloat16
    a = PickScoreReward(full)(images, PROMPTS, IDEAS)
    b = PickScoreReward(half)(images, PROMPTS, IDEAS)
    assert b.dtype == torch.float32
    torch.testing.assert_close(b, a, atol=0.05, rtol=0.05)
    hps = hps_clip(assets["clip_model_name"], assets["hps_weights"], device="cpu", dtype="bf16")
    assert hps.model.visual.conv1.weight.dtype == torch.bfloat16  # open_clip keeps norms in fp32
