"""The PPO math in promptrl.ppo.core against hand-computed values and numpy."""

import math

import numpy as np
import pytest
import torch

from promptrl.ppo.core import (
    AdaptiveKLController,
    FixedKLController,
    RunningMoments,
    compute_advantages,
    logprobs_from_logits,
    masked_mean,
    masked_var,
    whiten,
)


def test_gae_matches_hand_computation_and_padding_does_not_leak():
    gamma, lam = 0.9, 0.8  # gamma * lam = 0.72
    values = torch.tensor([[1.0, 2.0, 3.0], [0.5, 1.5, 99.0]])
    rewards = torch.tensor([[0.5, -1.0, 2.0], [1.0, 2.0, 77.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])  # row 1: two tokens, then padding
    advantages, returns = compute_advantages(values, rewards, mask, gamma, lam)

    # Row 0, backwards; the value after the last token is 0:
    #   d2 = 2 + 0 - 3 = -1;            A2 = -1
    #   d1 = -1 + 0.9*3 - 2 = -0.3;     A1 = -0.3 + 0.72*(-1) = -1.02
    #   d0 = 0.5 + 0.9*2 - 1 = 1.3;     A0 = 1.3 + 0.72*(-1.02) = 0.5656
    # Row 1 ends at t=1, so the padded value 99 (and reward 77) must not enter:
    #   d1 = 2 + 0 - 1.5 = 0.5;         A1 = 0.5
    #   d0 = 1 + 0.9*1.5 - 0.5 = 1.85;  A0 = 1.85 + 0.72*0.5 = 2.21
    expected_adv = torch.tensor([[0.5656, -1.02, -1.0], [2.21, 0.5, 0.0]])
    expected_ret = torch.tensor([[1.5656, 0.98, 2.0], [2.71, 2.0, 0.0]])
    torch.testing.assert_close(advantages, expected_adv, rtol=0, atol=1e-5)
    torch.testing.assert_close(returns, expected_ret, rtol=0, atol=1e-5)


def test_whiten_uses_whole_batch_statistics():
    values = torch.tensor([[1.0, 2.0, 3.0, 0.0], [10.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])  # row 1: a 1-token response
    out = whiten(values, mask)

    real = np.array([1.0, 2.0, 3.0, 10.0])
    expected = (real - real.mean()) / math.sqrt(real.var(ddof=1) + 1e-8)
    got = out[mask.bool()].numpy()
    assert np.all(np.isfinite(out.numpy()))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert out[~mask.bool()].abs().max() == 0  # padding stays zero

    kept_mean = whiten(values, mask, shift_mean=False)[mask.bool()].numpy()
    np.testing.assert_allclose(kept_mean, expected + real.mean(), rtol=1e-5)


def test_whiten_single_token_batch_is_finite():
    out = whiten(torch.tensor([[4.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
    assert torch.isfinite(out).all()


def test_masked_mean_and_var_ignore_padding():
    values = torch.tensor([[1.0, 5.0, -100.0], [3.0, -100.0, -100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert masked_mean(values, mask).item() == pytest.approx(3.0)
    assert masked_var(values, mask).item() == pytest.approx(np.var([1.0, 5.0, 3.0], ddof=1))
    assert masked_var(values, mask, unbiased=False).item() == pytest.approx(np.var([1.0, 5.0, 3.0]))


@pytest.mark.parametrize("kl", [0.0, 5.4, 6.9, 50.0])
def test_adaptive_kl_controller_follows_formula(kl):
    init, target, horizon, n_steps = 0.2, 6.0, 10000.0, 256
    ctl = AdaptiveKLController(init, target, horizon)
    ctl.update(kl, n_steps)
    error = np.clip(kl / target - 1, -0.2, 0.2)
    assert ctl.value == pytest.approx(init * (1 + error * n_steps / horizon), rel=1e-12)
    ctl.update(kl, n_steps)  # the update compounds
    assert ctl.value == pytest.approx(init * (1 + error * n_steps / horizon) ** 2, rel=1e-12)


def test_adaptive_kl_controller_moves_toward_target():
    ctl = AdaptiveKLController(0.2, target=6.0, horizon=100.0)
    ctl.update(12.0, 10)
    assert ctl.value > 0.2
    ctl = AdaptiveKLController(0.2, target=6.0, horizon=100.0)
    ctl.update(1.0, 10)
    assert ctl.value < 0.2


def test_fixed_kl_controller_never_moves():
    ctl = FixedKLController(0.3)
    for kl in (0.0, 100.0, -5.0):
        ctl.update(kl, 1000)
    assert ctl.value == 0.3


def test_logprobs_from_logits_matches_manual_log_softmax():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 7) * 3
    labels = torch.randint(0, 7, (2, 3))
    got = logprobs_from_logits(logits, labels)
    for b in range(2):
        for t in range(3):
            row = logits[b, t].double().tolist()
            expected = row[labels[b, t]] - math.log(sum(math.exp(x) for x in row))
            assert got[b, t].item() == pytest.approx(expected, abs=1e-5)


def test_running_moments_match_numpy_over_batches():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=n) for n in (5, 17, 1, 40, 8)]
    moments = RunningMoments()
    seen = []
    for batch in batches:
        batch_mean, batch_std = moments.update(torch.tensor(batch))
        seen.extend(batch)
        assert batch_mean == pytest.approx(batch.mean(), rel=1e-9)
        if len(batch) > 1:
            assert batch_std == pytest.approx(batch.std(ddof=1), rel=1e-9)
        assert moments.mean == pytest.approx(np.mean(seen), rel=1e-9)
        if len(seen) > 1:
            assert moments.std == pytest.approx(np.std(seen, ddof=1), rel=1e-6)

    restored = RunningMoments()
    restored.load_state_dict(moments.state_dict())
    assert (restored.mean, restored.std, restored.count) == (moments.mean, moments.std, moments.count)
