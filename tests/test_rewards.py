"""Rewards: CLIP-based scores against hand computations, the mixing API and its errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from promptrl.rewards import (
    AestheticReward,
    ClipModel,
    ClipSimilarityReward,
    PromptPenalty,
    RewardError,
    WeightedSum,
    build_reward,
    call_reward,
    score,
    with_terms,
)
from promptrl.rewards.baselines import PerIdeaBaseline
from promptrl.rewards.clip import AestheticMLP
from promptrl.standins.tiny import tiny_assets

PROMPTS = ["a lighthouse in a storm, oil painting", "a red fox, watercolor", "a misty forest"]
IDEAS = ["a lighthouse in a storm", "a fox", "a forest"]


@pytest.fixture(scope="module")
def assets():
    """Tiny models in this session's cache (conftest.tiny_cache)."""
    return tiny_assets()


@pytest.fixture(scope="module")
def clip(assets):
    return ClipModel.shared(assets["clip_model_name"], assets["clip_pretrained"], device="cpu")


@pytest.fixture
def images():
    return torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def test_clip_embeddings(clip, images):
    assert clip.embed_dim == 64
    img = clip.image_embeddings(images)
    txt = clip.text_embeddings(IDEAS)
    for emb in (img, txt):
        assert emb.shape == (3, 64) and emb.dtype == torch.float32
        torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3))
    assert not img.requires_grad


def test_rewards_on_one_batch_share_one_clip_forward(clip, images, assets, monkeypatch):
    calls = []
    encode = clip.model.encode_image
    monkeypatch.setattr(clip.model, "encode_image", lambda x: calls.append(len(x)) or encode(x))
    reward = WeightedSum(
        {
            "aesthetic": (1.0, AestheticReward(clip, assets["aesthetic_weights"])),
            "similarity": (1.0, ClipSimilarityReward(clip)),
        }
    )
    score(reward, images, PROMPTS, IDEAS)
    assert calls == [3]
    images.mul_(0.5)  # changed in place: computed afresh
    first = clip.image_embeddings(images)
    assert calls == [3, 3] and clip.image_embeddings(images) is first
    torch.testing.assert_close(clip.image_embeddings(images.clone()), first)
    assert calls == [3, 3, 3]


def test_text_embeddings_encode_each_distinct_text_once(assets, monkeypatch):
    clip = ClipModel(assets["clip_model_name"], assets["clip_pretrained"], device="cpu")
    fresh = clip.text_embeddings(IDEAS)
    calls = []
    encode = clip.model.encode_text
    monkeypatch.setattr(clip.model, "encode_text", lambda x: calls.append(len(x)) or encode(x))
    again = clip.text_embeddings([IDEAS[1], "a new idea", IDEAS[1], "a new idea"])
    assert calls == [1]  # only the unseen text, once
    torch.testing.assert_close(again[0], fresh[1])
    torch.testing.assert_close(again[1], again[3])
    monkeypatch.setattr("promptrl.rewards.embedders.TEXT_CACHE_SIZE", 2)
    clip.text_embeddings(["x"])
    assert list(clip._texts) == ["a new idea", "x"]  # the oldest are dropped


def test_clip_preprocessing_matches_open_clip_pil_transform(clip):
    from open_clip.transform import image_transform
    from PIL import Image

    cfg = clip.model.visual.preprocess_cfg
    transform = image_transform(cfg["size"], is_train=False, mean=cfg["mean"], std=cfg["std"])
    image = torch.rand(3, 48, 80, generator=torch.Generator().manual_seed(1))
    image = F.avg_pool2d(image[None], 3, 1, 1)[0]  # smooth enough for resampling to agree
    pil = Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    ours = clip.preprocess(image[None])[0]
    assert ours.shape == (3, 32, 32)
    assert (ours - transform(pil)).abs().mean() < 0.05


def test_shared_clip_is_one_instance(assets, clip):
    again = ClipModel.shared(assets["clip_model_name"], assets["clip_pretrained"], device="cpu")
    assert again is clip


def test_aesthetic_reward_equals_hand_computation(clip, images, tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    mlp = AestheticMLP(64)
    torch.save(mlp.state_dict(), tmp_path / "aesthetic.pth")
    save_file(mlp.state_dict(), tmp_path / "aesthetic.safetensors")
    with torch.no_grad():
        pixels = clip.preprocess(images)
        expected = mlp.eval()(F.normalize(clip.model.encode_image(pixels), dim=-1))[:, 0]
    for name in ("aesthetic.pth", "aesthetic.safetensors"):
        reward = AestheticReward(clip, weights=str(tmp_path / name))
        out = reward(images, PROMPTS, IDEAS)
        assert out.shape == (3,) and torch.isfinite(out).all()
        torch.testing.assert_close(out, expected)


def test_aesthetic_reward_rejects_mismatched_weights(clip, tmp_path):
    torch.save(AestheticMLP(768).state_dict(), tmp_path / "l14.pth")
    with pytest.raises(ValueError, match="768"):
        AestheticReward(clip, weights=str(tmp_path / "l14.pth"))
    torch.save({"fc.weight": torch.zeros(1, 64)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="layers"):
        AestheticReward(clip, weights=str(tmp_path / "other.pth"))
    with pytest.raises(FileNotFoundError):
        AestheticReward(clip, weights=str(tmp_path / "missing.pth"))


def test_hub_weights_fail_clearly_offline(clip):
    from huggingface_hub import constants

    if not constants.HF_HUB_OFFLINE:
        pytest.skip("needs HF_HUB_OFFLINE=1 (a download attempt would wait on the network)")
    with pytest.raises(FileNotFoundError, match="pass its local path"):
        AestheticReward(clip)  # the default: the real LAION predictor on the hub


def test_similarity_reward_and_hinge(clip, images):
    sim = ClipSimilarityReward(clip)(images, PROMPTS, IDEAS)
    expected = (clip.image_embeddings(images) * clip.text_embeddings(IDEAS)).sum(-1)
    torch.testing.assert_close(sim, expected)
    assert sim.shape == (3,) and (sim.abs() <= 1 + 1e-5).all()

    hinge = sim.median().item()
    capped = ClipSimilarityReward(clip, hinge=hinge, scale=2.0)(images, PROMPTS, IDEAS)
    torch.testing.assert_close(capped, 2.0 * sim.clamp(max=hinge))
    assert capped.max() <= 2 * hinge + 1e-6

    by_prompt = ClipSimilarityReward(clip, against="prompt")(images, PROMPTS, IDEAS)
    expected = (clip.image_embeddings(images) * clip.text_embeddings(PROMPTS)).sum(-1)
    torch.testing.assert_close(by_prompt, expected)
    with pytest.raises(ValueError, match="against"):
        ClipSimilarityReward(clip, against="image")


def test_prompt_penalty():
    penalty = PromptPenalty(max_words=10)
    clean = "a lighthouse in a storm, oil painting"
    repetitive = "a lighthouse, 4k, 4k, 4k, highly detailed, highly detailed, trending"
    long_clean = " ".join(f"word{i}" for i in range(20))
    out = penalty(None, [clean, repetitive, long_clean, repetitive + ", " + long_clean], IDEAS + [""])
    assert out[0] == 0
    assert out[1] < 0 and out[2] < 0 and out[3] < min(out[1], out[2])
    assert out[2] == pytest.approx(-(20 - 10) / 10)
    assert (out <= 0).all()


def test_weighted_sum_components_and_total(images):
    def brightness(images, prompts, ideas):
        return images.mean(dim=(1, 2, 3))

    class Length:
        def __call__(self, images, prompts, ideas):
            return [float(len(p)) for p in prompts]

    mix = WeightedSum({"bright": (2.0, brightness), "len": (-0.5, Length())})
    total, parts = score(mix, images, PROMPTS, IDEAS)
    assert list(parts) == ["bright", "len"]
    torch.testing.assert_close(parts["bright"], images.mean(dim=(1, 2, 3)))
    torch.testing.assert_close(parts["len"], torch.tensor([float(len(p)) for p in PROMPTS]))
    torch.testing.assert_close(total, 2.0 * parts["bright"] - 0.5 * parts["len"])
    torch.testing.assert_close(mix(images, PROMPTS, IDEAS), total)

    total, parts = score(brightness, images, PROMPTS, IDEAS)
    assert list(parts) == ["brightness"] and torch.equal(total, parts["brightness"])
    assert list(score(Length(), images, PROMPTS, IDEAS)[1]) == ["Length"]
    with pytest.raises(ValueError, match="one prompt and one idea per image"):
        score(brightness, images, PROMPTS[:2], IDEAS)


def test_with_terms_adds_weighted_terms_to_any_reward(images):
    def brightness(images, prompts, ideas):
        return images.mean(dim=(1, 2, 3))

    def darkness(images, prompts, ideas):
        return 1 - images.mean(dim=(1, 2, 3))

    mixed = with_terms(WeightedSum({"bright": (2.0, brightness)}), {"dark": (0.5, darkness)})
    total, parts = score(mixed, images, PROMPTS, IDEAS)
    assert list(parts) == ["bright", "dark"]
    torch.testing.assert_close(total, 2.0 * parts["bright"] + 0.5 * parts["dark"])
    alone = with_terms(brightness, {"dark": (0.5, darkness)})  # one function counts at weight 1
    assert alone.terms["brightness"] == (1.0, brightness) and list(alone.terms) == ["brightness", "dark"]
    with pytest.raises(ValueError, match=r"\['bright'\] are taken"):
        with_terms(mixed, {"bright": (1.0, darkness)})


def test_call_reward_accepts_lists_arrays_and_column_vectors(images):
    for value in ([1, 2, 3], np.array([1.0, 2.0, 3.0]), torch.tensor([[1.0], [2.0], [3.0]])):
        out = call_reward("r", lambda i, p, d, v=value: v, images, PROMPTS, IDEAS)
        assert out.dtype == torch.float32 and torch.equal(out, torch.tensor([1.0, 2.0, 3.0]))


@pytest.mark.parametrize(
    "returned, message",
    [
        (torch.zeros(3, 2), r"shape \[3, 2\]"),
        (torch.zeros(4), r"shape \[4\]"),
        (torch.tensor([0.0, math.nan, 1.0]), r"non-finite.*\[1\]"),
        ([0.0, 1.0, math.inf], "non-finite"),
        ("great image", "the string 'great image'"),
        (["a", "b", "c"], "list of 3 items"),
        (None, "NoneType"),
    ],
)
def test_call_reward_rejects_bad_returns(images, returned, message):
    def my_reward(images, prompts, ideas):
        return returned

    with pytest.raises(RewardError, match=message) as err:
        call_reward("my_reward", my_reward, images, PROMPTS, IDEAS)
    assert "reward 'my_reward'" in str(err.value) and "expected 3 finite numbers" in str(err.value)


def test_call_reward_wraps_exceptions(images):
    def my_fn(images, prompts, ideas):
        return 1 / 0

    with pytest.raises(RewardError, match="reward 'my_fn' raised ZeroDivisionError") as err:
        score(WeightedSum({"my_fn": (1.0, my_fn)}), images, PROMPTS, IDEAS)
    assert isinstance(err.value.__cause__, ZeroDivisionError)


def test_per_idea_baseline():
    baseline = PerIdeaBaseline(momentum=0.9)
    first = torch.tensor([1.0, 3.0, 5.0])
    out = baseline.normalize(["a", "a", "b"], first)  # all unseen: the batch's statistics
    torch.testing.assert_close(out, (first - 3.0) / (first.std(unbiased=False) + 1e-6))

    out = baseline.normalize(["a", "b", "c"], torch.tensor([4.0, 5.0, 0.0]))
    # "a": seen twice (mean 2, std 1) before this batch; "b" once and "c" never: batch stats
    batch = torch.tensor([4.0, 5.0, 0.0])
    expected_bc = (batch[1:] - batch.mean()) / (batch.std(unbiased=False) + 1e-6)
    torch.testing.assert_close(out, torch.cat([torch.tensor([2.0 / (1 + 1e-6)]), expected_bc]))
    count, mean, var = baseline.stats["a"]
    assert count == 3 and mean == pytest.approx(8 / 3) and var == pytest.approx(14 / 9)

    restored = PerIdeaBaseline()
    restored.load_state_dict(baseline.state_dict())
    rewards = torch.tensor([2.0, 6.0])
    torch.testing.assert_close(restored.normalize(["a", "b"], rewards), baseline.normalize(["a", "b"], rewards))


def test_build_reward(assets, images, tmp_path, monkeypatch):
    (tmp_path / "user_rewards.py").write_text(
        "def darkness(images, prompts, ideas):\n    return 1 - images.mean(dim=(1, 2, 3))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reward = build_reward(
        [
            {"type": "aesthetic", "weight": 1.0},
            {"type": "similarity", "weight": 0.5, "hinge": 0.3},
            {"type": "penalty", "weight": 1.0, "max_words": 30},
            {"type": "callable", "name": "mine", "target": "user_rewards:darkness", "weight": 2.0},
        ],
        device="cpu",
        clip_model_name=assets["clip_model_name"],
        clip_pretrained=assets["clip_pretrained"],
        aesthetic_weights=assets["aesthetic_weights"],
    )
    assert list(reward.terms) == ["aesthetic", "similarity", "penalty", "mine"]
    assert reward.terms["aesthetic"][1].clip is reward.terms["similarity"][1].clip
    assert reward.terms["similarity"][1].hinge == 0.3
    total, parts = score(reward, images, PROMPTS, IDEAS)
    assert total.shape == (3,) and torch.isfinite(total).all()
    weights = {name: w for name, (w, _) in reward.terms.items()}
    torch.testing.assert_close(total, sum(weights[n] * parts[n] for n in parts))


def test_build_reward_errors():
    with pytest.raises(ValueError, match=r"unknown reward type 'sharpness'.*aesthetic"):
        build_reward([{"type": "sharpness"}])
    with pytest.raises(ValueError, match=r"unknown keys \['hindge'\]"):
        build_reward([{"type": "penalty", "hindge": 0.3}])
    with pytest.raises(ValueError, match="distinct names"):
        build_reward([{"type": "penalty"}, {"type": "penalty"}])
    with pytest.raises(ValueError, match="target"):
        build_reward([{"type": "callable"}])
    with pytest.raises(ValueError, match="module:function"):
        build_reward([{"type": "callable", "target": "no_colon"}])
