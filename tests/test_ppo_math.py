"""PPOTrainer's pieces pinned to hand-computed numbers, and one test per PPOConfig option that
fails when the option is ignored. `make mutants` checks that these tests notice planted bugs."""

import copy
import math

import pytest
import torch
from conftest import assert_same_state

from promptrl import PPOConfig, PPOTrainer, ValueHeadModel

pytestmark = pytest.mark.usefixtures("one_thread")

VOCAB = 258


def trainer_for(gpt2_dir, **config) -> PPOTrainer:
    return PPOTrainer(ValueHeadModel.from_pretrained(gpt2_dir), None, None, config=PPOConfig(**config))


def fixed_batch(n: int, q_len: int = 3, r_len: int = 4, seed: int = 0):
    """Equal-length queries and responses, so every sample weighs the same in a token mean."""
    g = torch.Generator().manual_seed(seed)
    queries = [torch.randint(0, VOCAB - 2, (q_len,), generator=g) for _ in range(n)]
    responses = [torch.randint(0, VOCAB - 2, (r_len,), generator=g) for _ in range(n)]
    return queries, responses, torch.randn(n, generator=g)


def count_optimizer_steps(trainer: PPOTrainer) -> list[int]:
    calls = [0]
    step = trainer.optimizer.step

    def counted(*args, **kwargs):
        calls[0] += 1
        return step(*args, **kwargs)

    trainer.optimizer.step = counted
    return calls


def params(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


# -- rewards: KL penalty and the score -----------------------------------------------------
def test_kl_penalty_per_token_and_score_on_the_last_real_token(gpt2_dir):
    trainer = trainer_for(gpt2_dir, batch_size=2, init_kl_coef=0.3)
    logprobs = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, 0.0]])
    ref_logprobs = torch.tensor([[-1.5, -2.0, -2.0], [-2.0, -1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    rewards, non_score, kl = trainer.compute_rewards(torch.tensor([1.0, 2.0]), logprobs, ref_logprobs, mask)
    # kl = logp - logp_ref = [[0.5, 0, -1], [1, 0, 0]]; penalty = -0.3 * kl
    torch.testing.assert_close(kl, torch.tensor([[0.5, 0.0, -1.0], [1.0, 0.0, 0.0]]))
    torch.testing.assert_close(non_score, torch.tensor([[-0.15, 0.0, 0.3], [-0.3, 0.0, 0.0]]))
    # the score lands on each row's last real token: row 0 at t=2 (0.3 + 1), row 1 at t=1 (0 + 2)
    torch.testing.assert_close(rewards, torch.tensor([[-0.15, 0.0, 1.3], [-0.3, 2.0, 0.0]]))


# -- the clipped losses and their statistics -------------------------------------------------
def test_clipped_policy_and_value_losses_by_hand(gpt2_dir):
    # Not the defaults (0.2, 0.2, 0.1), so a loss that ignored an option would still match them.
    trainer = trainer_for(gpt2_dir, batch_size=1, cliprange=0.3, cliprange_value=0.25, vf_coef=0.5)
    old_logprobs = torch.zeros(1, 3)
    logprobs = torch.log(torch.tensor([[1.5, 0.5, 1.0]]))  # ratios 1.5, 0.5, 1.0
    advantages = torch.tensor([[1.0, -1.0, 2.0]])
    values = torch.zeros(1, 3)
    vpreds = torch.tensor([[0.5, -0.1, 0.3]])
    returns = torch.ones(1, 3)
    mask = torch.ones(1, 3)
    loss, stats = trainer.loss(old_logprobs, values, advantages, returns, logprobs, vpreds, mask)

    # policy: -A*r = [-1.5, 0.5, -2]; -A*clip(r, 0.7, 1.3) = [-1.3, 0.7, -2]; max = [-1.3, 0.7, -2]
    assert stats["ppo/loss/policy"].item() == pytest.approx(-2.6 / 3, abs=1e-6)
    assert stats["ppo/policy/clipfrac"].item() == pytest.approx(2 / 3, abs=1e-6)
    # value: clip(vpred, 0 - 0.25, 0 + 0.25) = [0.25, -0.1, 0.25]
    #   (vpred - R)^2 = [0.25, 1.21, 0.49]; (vclip - R)^2 = [0.5625, 1.21, 0.5625]; max mean 2.335/3
    assert stats["ppo/loss/value"].item() == pytest.approx(0.5 * 2.335 / 3, abs=1e-6)
    assert stats["ppo/val/clipfrac"].item() == pytest.approx(2 / 3, abs=1e-6)
    assert stats["ppo/val/error"].item() == pytest.approx(1.95 / 3, abs=1e-6)
    assert stats["ppo/val/vpred"].item() == pytest.approx(0.7 / 3, abs=1e-6)
    assert loss.item() == pytest.approx(-2.6 / 3 + 0.5 * (0.5 * 2.335 / 3), abs=1e-6)
    # approx KL = mean(log r ^ 2) / 2; policy KL = mean(-log r)
    assert stats["ppo/policy/approxkl"].item() == pytest.approx(
        0.5 * (math.log(1.5) ** 2 + math.log(0.5) ** 2) / 3, abs=1e-6
    )
    assert stats["ppo/policy/policykl"].item() == pytest.approx(-(math.log(1.5) + math.log(0.5)) / 3, abs=1e-6)
    assert stats["ppo/policy/ratio"].item() == pytest.approx(1.0, abs=1e-6)
    assert stats["ppo/policy/ratio_max_dev"].item() == pytest.approx(0.5, abs=1e-6)


def test_losses_ignore_padded_tokens(gpt2_dir):
    trainer = trainer_for(gpt2_dir, batch_size=1)
    args = [
        torch.zeros(1, 2),
        torch.zeros(1, 2),
        torch.tensor([[1.0, 50.0]]),
        torch.tensor([[1.0, 50.0]]),
        torch.tensor([[0.1, 3.0]]),
        torch.tensor([[0.2, 9.0]]),
    ]
    _, padded = trainer.loss(*args, torch.tensor([[1.0, 0.0]]))
    _, alone = trainer.loss(*[a[:, :1] for a in args], torch.ones(1, 1))
    for key in ("ppo/loss/policy", "ppo/loss/value", "ppo/policy/clipfrac", "ppo/val/vpred"):
        assert padded[key].item() == pytest.approx(alone[key].item(), abs=1e-6), key


def test_entropy_is_the_policys_token_mean_over_real_tokens_at_the_rollout(gpt2_dir):
    """`ppo/policy/entropy`: the full next-token distribution's entropy at each real response
    token, averaged over all of them, computed once per step before any update."""
    trainer = trainer_for(gpt2_dir, batch_size=3, ppo_epochs=1, mini_batch_size=3)
    g = torch.Generator().manual_seed(3)
    queries = [torch.randint(0, VOCAB - 2, (n,), generator=g) for n in (3, 2, 4)]
    responses = [torch.randint(0, VOCAB - 2, (n,), generator=g) for n in (2, 4, 3)]
    model = trainer.policy
    entropies = []
    with torch.no_grad():
        for q, r in zip(queries, responses):  # each sample alone: no padding at all
            logits = model(torch.cat([q, r])[None]).logits[0, len(q) - 1 : -1]
            logp = logits.log_softmax(-1)
            entropies.append(-(logp.exp() * logp).sum(-1))
    expected = torch.cat(entropies).mean().item()  # 9 real tokens
    stats = trainer.step(queries, responses, [1.0, 0.0, -1.0])
    assert stats["ppo/policy/entropy"] == pytest.approx(expected, abs=1e-5)
    assert 0 < expected < math.log(VOCAB)


# -- score scaling ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options, expected",
    [
        # running mean 2.5, unbiased std sqrt(5/3) = 1.290994 after [1, 2, 3, 4]
        ({"use_score_scaling": True}, [1 / 1.290994, 2 / 1.290994, 3 / 1.290994, 4 / 1.290994]),
        (
            {"use_score_scaling": True, "use_score_norm": True},
            [-1.161895, -0.387298, 0.387298, 1.161895],
        ),
        (
            {"use_score_scaling": True, "use_score_norm": True, "score_clip": 0.5},
            [-0.5, -0.387298, 0.387298, 0.5],
        ),
        ({"score_clip": 2.5}, [1.0, 2.0, 2.5, 2.5]),
        ({}, [1.0, 2.0, 3.0, 4.0]),
    ],
)
def test_score_scaling_normalisation_and_clipping(gpt2_dir, options, expected):
    trainer = trainer_for(gpt2_dir, batch_size=4, **options)
    scaled = trainer._scale_scores(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    torch.testing.assert_close(scaled, torch.tensor(expected), rtol=0, atol=1e-5)


@pytest.mark.parametrize("scores", [[5.0], [3.0, 3.0, 3.0]], ids=["one score", "identical scores"])
def test_score_scaling_without_spread_divides_by_one(gpt2_dir, scores):
    """One score, or identical ones, have a running std of ~0: dividing by it would multiply
    the scores by ~1e8. Below the floor the scale is 1."""
    trainer = trainer_for(gpt2_dir, batch_size=len(scores), use_score_scaling=True)
    torch.testing.assert_close(trainer._scale_scores(torch.tensor(scores)), torch.tensor(scores))
    # The floor is relative: a real spread far below 1 is still scaled (std 0.01 -> x100).
    spread = trainer_for(gpt2_dir, batch_size=2, use_score_scaling=True)
    scaled = spread._scale_scores(torch.tensor([0.0, 0.01 * math.sqrt(2)]))
    assert scaled[1].item() == pytest.approx(math.sqrt(2), rel=1e-4)


def test_a_one_sample_step_with_score_scaling_stays_finite_and_small(gpt2_dir):
    trainer = trainer_for(gpt2_dir, batch_size=1, forward_batch_size=1, mini_batch_size=1, use_score_scaling=True)
    q, r, _ = fixed_batch(1)
    stats = trainer.step(q, r, [5.0])
    assert abs(stats["ppo/returns/mean"]) < 10  # unscaled: ~5; with a 1e-12 std: ~5e12


# -- the KL controller inside step ---------------------------------------------------------------
def test_step_moves_the_adaptive_coefficient_by_the_formula(gpt2_dir):
    trainer = trainer_for(
        gpt2_dir,
        batch_size=4,
        mini_batch_size=2,
        lr=1e-2,
        init_kl_coef=0.3,
        target=0.5,
        horizon=100,
    )
    trainer.step(*fixed_batch(4, seed=1))  # the policy moves away from the reference
    before = trainer.kl_ctl.value
    seen = []
    update = trainer.kl_ctl.update
    trainer.kl_ctl.update = lambda kl, n_steps: seen.append((kl, n_steps)) or update(kl, n_steps)
    stats = trainer.step(*fixed_batch(4, seed=2))
    assert seen == [(pytest.approx(stats["objective/kl"], rel=1e-6), 4)]  # the batch's KL, 4 samples
    error = min(max(stats["objective/kl"] / 0.5 - 1, -0.2), 0.2)
    assert stats["objective/kl"] != 0
    assert trainer.kl_ctl.value == pytest.approx(before * (1 + error * 4 / 100), rel=1e-9)
    assert stats["objective/kl_coef"] == before  # the step used the coefficient it started with


def test_fixed_kl_coefficient_never_moves(gpt2_dir):
    trainer = trainer_for(
        gpt2_dir,
        batch_size=4,
        mini_batch_size=2,
        lr=1e-2,
        init_kl_coef=0.3,
        adap_kl_ctrl=False,
        target=0.01,
        horizon=1,
    )
    for seed in (1, 2):
        stats = trainer.step(*fixed_batch(4, seed=seed))
    assert stats["objective/kl"] != 0 and trainer.kl_ctl.value == 0.3


# -- GAE and whitening inside step ---------------------------------------------------------------
def test_step_passes_gamma_and_lam_and_whitens_advantages(gpt2_dir, monkeypatch):
    import promptrl.ppo.trainer as ppo

    seen = {}
    compute = ppo.compute_advantages

    def spy(values, rewards, mask, gamma, lam):
        seen["gamma_lam"] = (gamma, lam)
        return compute(values, rewards, mask, gamma, lam)

    monkeypatch.setattr(ppo, "compute_advantages", spy)
    trainer = trainer_for(gpt2_dir, batch_size=4, mini_batch_size=4, gamma=0.7, lam=0.3)
    stats = trainer.step(*fixed_batch(4))
    assert seen["gamma_lam"] == (0.7, 0.3)
    advantages = torch.tensor(stats["ppo/policy/advantages"])
    assert advantages.mean().item() == pytest.approx(0.0, abs=1e-5)  # whitened over the batch
    assert advantages.std().item() == pytest.approx(1.0, abs=1e-3)


def test_whiten_rewards_changes_the_returns(gpt2_dir):
    batch = fixed_batch(4)
    plain = trainer_for(gpt2_dir, batch_size=4).step(*batch)
    whitened = trainer_for(gpt2_dir, batch_size=4, whiten_rewards=True).step(*batch)
    # With the reference equal to the policy the per-token rewards are the scores on the last
    # token; whitening (without shifting the mean) rescales them to unit variance.
    assert whitened["ppo/returns/var"] != pytest.approx(plain["ppo/returns/var"], rel=1e-3)


# -- minibatching, accumulation, early stopping, the ratio guard ----------------------------------
def test_gradient_accumulation_equals_one_bigger_minibatch(gpt2_dir):
    """6 samples, minibatches of 2 accumulated 2 at a time -> groups [2+2] and [2]: the same
    updates as minibatches of 4 (then 2), since equal lengths make the token means agree.
    Plain SGD keeps the update linear in the gradient, so float noise stays float noise."""
    batch = fixed_batch(6)

    def run(**config):
        model = ValueHeadModel.from_pretrained(gpt2_dir)
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
        trainer = PPOTrainer(
            model,
            None,
            None,
            # Uniform minibatches: length grouping draws the order of 2 or 3 chunks afresh.
            config=PPOConfig(batch_size=6, ppo_epochs=2, group_by_length=False, **config),
            optimizer=optimizer,
        )
        steps = count_optimizer_steps(trainer)
        trainer.step(*batch)
        return trainer, steps[0]

    # No gradient clipping: a clipped norm would hide a group's gradient of the wrong size.
    accumulated, steps = run(mini_batch_size=2, gradient_accumulation_steps=2, max_grad_norm=None)
    direct, _ = run(mini_batch_size=4, max_grad_norm=None)
    assert steps == 2 * 2  # two groups per epoch: the short last group is stepped too
    a, b = params(accumulated.policy), params(direct.policy)
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6
    assert all(p.grad is None or not p.grad.any() for p in accumulated.policy.parameters())


@pytest.mark.parametrize("grouped, expected", [(True, [0.5, 1.5]), (False, [1.0, 1.0])])
def test_length_grouped_minibatches_weigh_by_their_share_of_tokens(gpt2_dir, grouped, expected):
    """Responses of 2, 2, 6 and 6 tokens in minibatches of 2: grouped, the short pair holds 4 of
    the batch's 16 tokens, a mean of 8 per minibatch, so its loss weighs 4/8 and the long pair's
    12/8; uniform minibatches keep plain token means (weight 1)."""
    trainer = trainer_for(gpt2_dir, batch_size=4, mini_batch_size=2, ppo_epochs=1, group_by_length=grouped)
    g = torch.Generator().manual_seed(0)
    queries = [torch.randint(0, VOCAB - 2, (3,), generator=g) for _ in range(4)]
    responses = [torch.randint(0, VOCAB - 2, (n,), generator=g) for n in (2, 6, 2, 6)]
    seen = []
    train = trainer._train_minibatch
    trainer._train_minibatch = lambda batch, idx, targets, scale, step_tokens=None: (
        seen.append((sorted(idx), scale)) or train(batch, idx, targets, scale, step_tokens)
    )
    trainer.step(queries, responses, [1.0, 0.0, -1.0, 0.5])
    if grouped:
        assert sorted(seen) == [([0, 2], pytest.approx(expected[0])), ([1, 3], pytest.approx(expected[1]))]
    else:
        assert [scale for _, scale in seen] == expected


def test_one_optimizer_step_per_minibatch_without_accumulation(gpt2_dir):
    trainer = trainer_for(gpt2_dir, batch_size=6, mini_batch_size=2, ppo_epochs=3)
    steps = count_optimizer_steps(trainer)
    stats = trainer.step(*fixed_batch(6))
    assert steps[0] == 3 * 3 and len(trainer.minibatch_stats) == 9 and stats["ppo/epochs"] == 3


def test_early_stopping_stops_at_the_first_minibatch_over_the_bound(gpt2_dir):
    """The first minibatch has approx KL 0 and trains; the second sees the moved policy and
    stops the step before its own update (per minibatch, not at the end of an epoch)."""
    trainer = trainer_for(gpt2_dir, batch_size=6, mini_batch_size=2, lr=1e-2, early_stopping=True, target_kl=1e-6)
    steps = count_optimizer_steps(trainer)
    stats = trainer.step(*fixed_batch(6))
    assert len(trainer.minibatch_stats) == 2 and steps[0] == 1
    assert trainer.minibatch_stats[1]["ppo/policy/approxkl"] > 1.5e-6
    assert stats["ppo/early_stopped"] == 1.0 and stats["ppo/epochs"] == 1

    # Within an accumulation group the policy has not moved yet: the first group of 3 trains
    # and steps, the second group's first minibatch stops the step; nothing after it runs.
    grouped = trainer_for(
        gpt2_dir,
        batch_size=6,
        mini_batch_size=1,
        gradient_accumulation_steps=3,
        lr=1e-2,
        early_stopping=True,
        target_kl=1e-6,
    )
    steps = count_optimizer_steps(grouped)
    grouped.step(*fixed_batch(6))
    assert len(grouped.minibatch_stats) == 4 and steps[0] == 1

    loose = trainer_for(gpt2_dir, batch_size=6, mini_batch_size=2, lr=1e-2, early_stopping=True, target_kl=10.0)
    stats = loose.step(*fixed_batch(6))
    assert len(loose.minibatch_stats) == 12 and stats["ppo/early_stopped"] == 0.0


def test_minibatches_whose_ratio_exploded_are_skipped_and_counted(gpt2_dir):
    trainer = trainer_for(gpt2_dir, batch_size=8, mini_batch_size=2, lr=3e-2, ratio_threshold=1.0)
    steps = count_optimizer_steps(trainer)
    stats = trainer.step(*fixed_batch(8))
    over = [s["ppo/policy/ratio"] > 1.0 for s in trainer.minibatch_stats]
    assert 0 < sum(over) < len(over)
    assert stats["ppo/skipped_minibatches"] == sum(over)
    assert steps[0] == len(over) - sum(over)

    unguarded = trainer_for(gpt2_dir, batch_size=8, mini_batch_size=2, lr=3e-2, ratio_threshold=None)
    assert unguarded.step(*fixed_batch(8))["ppo/skipped_minibatches"] == 0


def test_max_grad_norm_bounds_each_update(gpt2_dir):
    """Plain SGD with lr 1: the update is minus the (clipped) gradient, so its norm is the bound."""

    def update_norm(max_grad_norm):
        model = ValueHeadModel.from_pretrained(gpt2_dir)
        start = params(model)
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
        config = PPOConfig(batch_size=2, mini_batch_size=2, ppo_epochs=1, max_grad_norm=max_grad_norm)
        PPOTrainer(model, None, None, config=config, optimizer=optimizer).step(*fixed_batch(2))
        return math.sqrt(sum(((p.detach() - start[n]) ** 2).sum().item() for n, p in model.named_parameters()))

    assert update_norm(None) > 0.01
    assert update_norm(1e-3) == pytest.approx(1e-3, rel=1e-3)


def test_forward_batch_size_sets_the_rollout_chunks(gpt2_dir, monkeypatch):
    trainer = trainer_for(gpt2_dir, batch_size=7, forward_batch_size=3)
    calls = []
    forward = trainer._forward
    monkeypatch.setattr(
        trainer,
        "_forward",
        lambda model, batch: calls.append(len(batch.input_ids)) or forward(model, batch),
    )
    trainer.rollout_pass(*fixed_batch(7)[:2])
    assert calls == [3, 3, 3, 3, 1, 1]  # policy and reference per chunk of 3, 3, 1


def test_optimizer_gets_lr_eps_and_weight_decay(gpt2_dir):
    trainer = trainer_for(gpt2_dir, batch_size=1, lr=3e-4, adam_eps=1e-6, weight_decay=0.01)
    group = trainer.optimizer.param_groups[0]
    assert (group["lr"], group["eps"], group["weight_decay"]) == (3e-4, 1e-6, 0.01)


# -- precision -------------------------------------------------------------------------------
def test_value_head_runs_in_fp32_under_autocast(gpt2_dir):
    model = ValueHeadModel.from_pretrained(gpt2_dir)
    torch.nn.init.normal_(model.v_head.weight, std=1.0)
    ids = torch.randint(0, VOCAB - 2, (2, 9))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        values = model(ids).values
        hidden = model.pretrained_model(ids, output_hidden_states=True).hidden_states[-1]
    with torch.no_grad():
        expected = model.v_head(hidden.float()).squeeze(-1)
    assert values.dtype == torch.float32
    torch.testing.assert_close(values, expected, rtol=0, atol=1e-6)


@pytest.fixture
def fresh_accelerator_state():
    """accelerate keeps one process-wide state and refuses a second precision in one process."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()
    yield
    AcceleratorState._reset_state()


@pytest.mark.usefixtures("fresh_accelerator_state")
def test_mixed_precision_runs_the_lm_in_bf16_and_keeps_values_and_losses_in_fp32(gpt2_dir):
    trainer = trainer_for(gpt2_dir, batch_size=2, mini_batch_size=2, ppo_epochs=1, mixed_precision="bf16")
    assert trainer.accelerator.mixed_precision == "bf16"
    head_dtypes, loss_inputs = [], []
    trainer.policy.pretrained_model.lm_head.register_forward_hook(lambda m, a, out: head_dtypes.append(out.dtype))
    loss = trainer.loss

    def recorded_loss(*args):
        loss_inputs.append([a.dtype for a in args])
        return loss(*args)

    trainer.loss = recorded_loss
    stats = trainer.step(*fixed_batch(2))
    assert head_dtypes and set(head_dtypes) == {torch.bfloat16}  # the config's precision reached the LM
    assert loss_inputs and all(dtype == torch.float32 for dtype in loss_inputs[0])  # log-probs, values
    assert trainer.policy.v_head.weight.dtype == torch.float32
    assert all(math.isfinite(stats[k]) for k in ("ppo/loss/value", "ppo/val/vpred", "ppo/loss/total"))


# -- a failed step changes nothing -------------------------------------------------------------
def test_too_long_input_fails_before_any_state_moves(gpt2_dir):
    trainer = trainer_for(gpt2_dir, batch_size=2, mini_batch_size=1, lr=1e-3, use_score_scaling=True)
    trainer.step(*fixed_batch(2))
    before_params, before_state = params(trainer.policy), copy.deepcopy(trainer.state_dict())
    assert before_state["optimizer"]["state"]  # Adam's moments exist, so a change would show
    queries, responses, scores = fixed_batch(2)
    queries[1] = torch.zeros(253, dtype=torch.long)  # + 4 response tokens > the 256 positions
    with pytest.raises(ValueError, match="sample 1 has 253 query \\+ 4 response tokens.*256 positions"):
        trainer.step(queries, responses, scores)
    assert_same_state(trainer.state_dict(), before_state)
    assert all(torch.equal(p, before_params[n]) for n, p in trainer.policy.named_parameters())


# -- config validation ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "field, value, message",
    [
        ("gamma", 1.5, "'ppo.gamma' must be between 0.0 and 1.0"),
        ("lam", -0.1, "'ppo.lam' must be between 0.0 and 1.0"),
        ("score_clip", -1.0, "'ppo.score_clip' must be positive"),
        ("cliprange_value", 0.0, "'ppo.cliprange_value' must be positive"),
        ("vf_coef", -1.0, "'ppo.vf_coef' must be at least 0.0"),
        ("mini_batch_size", 0, "'ppo.mini_batch_size' must be at least 1"),
        ("ppo_epochs", True, "'ppo.ppo_epochs' must be an integer"),
        ("lr", float("nan"), "'ppo.lr' must be a number"),
        ("ratio_threshold", 0.5, "'ppo.ratio_threshold' must be at least 1.0"),
        ("max_grad_norm", 0.0, "'ppo.max_grad_norm' must be positive"),
        ("mixed_precision", "fp8", "'ppo.mixed_precision' must be one of"),
    ],
)
def test_ppo_config_names_the_bad_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        PPOConfig(**{field: value})


def test_an_accelerator_that_accumulates_itself_is_refused(gpt2_dir):
    from accelerate import Accelerator

    with pytest.raises(ValueError, match="PPOConfig.gradient_accumulation_steps"):
        PPOTrainer(
            ValueHeadModel.from_pretrained(gpt2_dir),
            None,
            None,
            config=PPOConfig(batch_size=1),
            accelerator=Accelerator(cpu=True, gradient_accumulation_steps=2),
        )
