"""PPOTrainer: the trl 0.1-compatible API, padding and alignment, determinism, input checks, LoRA, learning."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import assert_same_state

from promptrl import PPOConfig, PPOTrainer, ValueHeadModel, respond_to_batch
from promptrl.ppo.batch import PackedBatch

# Tiny models gain nothing from a second thread, and lose a lot on a busy machine.
pytestmark = pytest.mark.usefixtures("one_thread")

VOCAB = 258  # the tiny models' vocabulary (tests/conftest.py)
PAD_ID = 257

SEED_STATS = [
    "objective/kl",
    "objective/kl_dist",
    "objective/logprobs",
    "objective/ref_logprobs",
    "objective/kl_coef",
    "objective/entropy",
    "ppo/mean_non_score_reward",
    "ppo/loss/policy",
    "ppo/loss/value",
    "ppo/loss/total",
    "ppo/policy/entropy",
    "ppo/policy/approxkl",
    "ppo/policy/policykl",
    "ppo/policy/clipfrac",
    "ppo/policy/advantages",
    "ppo/policy/advantages_mean",
    "ppo/policy/ratio",
    "ppo/returns/mean",
    "ppo/returns/var",
    "ppo/val/vpred",
    "ppo/val/error",
    "ppo/val/clipfrac",
    "ppo/val/mean",
    "ppo/val/var",
    "ppo/val/var_explained",
    "time/ppo/forward_pass",
    "time/ppo/compute_rewards",
    "time/ppo/optimize_step",
    "time/ppo/calc_stats",
    "time/ppo/total",
]


def varied_batch(n: int, seed: int = 0):
    """Queries of 1..7 and responses of 1..8 tokens; one response holds the pad id as a real token."""
    g = torch.Generator().manual_seed(seed)
    queries = [torch.randint(0, VOCAB, (1 + i % 7,), generator=g) for i in range(n)]
    responses = [torch.randint(0, VOCAB, (1 + (3 * i + 2) % 8,), generator=g) for i in range(n)]
    responses[0][-1] = PAD_ID
    scores = torch.randn(n, generator=g).tolist()
    return queries, responses, scores


def weights(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


# -- the trl 0.1-compatible API ---------------------------------------------------------
@pytest.mark.parametrize("arch", ["gpt2", "bloom"])
def test_seed_readme_example(arch, request):
    path = request.getfixturevalue(f"{arch}_dir")
    # The seed README's example, with `trl` -> `promptrl` and hub names -> local paths.
    if arch == "gpt2":
        from transformers import GPT2Tokenizer as Tokenizer

        from promptrl.gpt2 import GPT2HeadWithValueModel as HeadModel
        from promptrl.gpt2 import respond_to_batch
    else:
        from transformers import AutoTokenizer as Tokenizer

        from promptrl.bloom import BloomHeadWithValueModel as HeadModel
        from promptrl.bloom import respond_to_batch
    from promptrl.ppo.trainer import PPOTrainer

    gpt2_model = HeadModel.from_pretrained(path)
    gpt2_model_ref = HeadModel.from_pretrained(path)
    gpt2_tokenizer = Tokenizer.from_pretrained(path)
    ppo_config = {"batch_size": 1, "forward_batch_size": 1}
    ppo_trainer = PPOTrainer(gpt2_model, gpt2_model_ref, gpt2_tokenizer, **ppo_config)
    query_txt = "This morning I went to the "
    query_tensor = gpt2_tokenizer.encode(query_txt, return_tensors="pt")
    response_tensor = respond_to_batch(gpt2_model, query_tensor)
    response_txt = gpt2_tokenizer.decode(response_tensor[0, :])
    reward = [torch.tensor(1.0)]
    start = weights(gpt2_model)
    train_stats = ppo_trainer.step([query_tensor[0]], [response_tensor[0]], reward)

    assert isinstance(response_txt, str) and response_tensor.shape == (1, 20)
    assert not set(SEED_STATS) - set(train_stats)
    scalars = {k: v for k, v in train_stats.items() if np.ndim(v) == 0}
    assert all(np.isfinite(v) for v in scalars.values()), scalars
    assert train_stats["objective/kl"] == pytest.approx(0.0, abs=1e-6)  # the reference is the start
    assert any(not torch.equal(p, start[n]) for n, p in gpt2_model.named_parameters())
    ref_weights = dict(gpt2_model_ref.named_parameters())
    assert all(torch.equal(ref_weights[n], start[n]) for n in start)  # the reference is frozen


def test_unknown_ppo_parameter_is_a_clear_error(gpt2_dir):
    model = ValueHeadModel.from_pretrained(gpt2_dir)
    with pytest.raises(ValueError, match="forward_batchsize.*Known parameters"):
        PPOTrainer(model, None, None, batch_size=1, forward_batchsize=1)


def test_multi_process_launch_that_accelerate_does_not_see_is_refused(gpt2_dir, monkeypatch):
    """torchrun on CPU without ACCELERATE_USE_CPU: each rank would silently train alone."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    model = ValueHeadModel.from_pretrained(gpt2_dir)
    with pytest.raises(RuntimeError, match="ACCELERATE_USE_CPU=true"):
        PPOTrainer(model, None, None, batch_size=1)


# -- padding, positions, temperature -------------------------------------------------------
@pytest.mark.parametrize("arch", ["gpt2", "bloom"])
@pytest.mark.parametrize("separate_ref", [True, False], ids=["ref-model", "ref-copy"])
def test_first_minibatch_has_ratio_one_and_kl_zero(arch, separate_ref, request):
    """Rollout chunks of 3 and minibatches of 4 pad differently: the log-probs must not care."""
    path = request.getfixturevalue(f"{arch}_dir")
    model = ValueHeadModel.from_pretrained(path)
    ref = ValueHeadModel.from_pretrained(path) if separate_ref else None
    config = PPOConfig(batch_size=10, forward_batch_size=3, mini_batch_size=4, lr=1e-3)
    trainer = PPOTrainer(model, ref, None, config=config)
    stats = trainer.step(*varied_batch(10))

    assert trainer.minibatch_stats[0]["ppo/policy/ratio_max_dev"] < 1e-5
    assert abs(stats["objective/kl"]) < 1e-6
    assert len(trainer.minibatch_stats) == 4 * 3  # 10 samples -> minibatches of 4, 4, 2
    # The policy did move, so the ratio statistic is live (not stuck at 0).
    assert max(s["ppo/policy/ratio_max_dev"] for s in trainer.minibatch_stats[1:]) > 1e-4


@pytest.mark.parametrize("arch", ["gpt2", "bloom"])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_rollout_logprobs_match_each_sample_alone(arch, temperature, request):
    """In one left/right-padded batch, every sample's log-probs (at the sampling temperature)
    and values equal those of a plain unpadded forward of that sample alone."""
    path = request.getfixturevalue(f"{arch}_dir")
    model = ValueHeadModel.from_pretrained(path)
    torch.nn.init.normal_(model.v_head.weight, std=0.5)  # non-zero values, so alignment shows
    queries, responses, _ = varied_batch(8)
    config = PPOConfig(batch_size=8, forward_batch_size=8, temperature=temperature)
    trainer = PPOTrainer(model, None, None, config=config)
    rollout = trainer.rollout_pass(queries, responses)
    logprobs, values, mask = rollout.logprobs, rollout.values, rollout.mask

    with torch.no_grad():
        for i, (q, r) in enumerate(zip(queries, responses)):
            logits, _, v = model(torch.cat([q, r])[None])
            pred = slice(len(q) - 1, len(q) + len(r) - 1)  # the positions that predict r
            expected = F.log_softmax(logits[0, pred].double() / temperature, -1)[torch.arange(len(r)), r]
            torch.testing.assert_close(logprobs[i, : len(r)].double(), expected, rtol=0, atol=2e-5)
            torch.testing.assert_close(values[i, : len(r)], v[0, pred], rtol=0, atol=2e-5)
            assert mask[i].sum() == len(r)
            assert logprobs[i, len(r) :].abs().sum() == 0


def test_group_by_length_partitions_the_batch_into_similar_lengths(gpt2_dir):
    queries, responses, scores = varied_batch(12)
    config = PPOConfig(batch_size=12, forward_batch_size=5, mini_batch_size=4, group_by_length=True)
    trainer = PPOTrainer(ValueHeadModel.from_pretrained(gpt2_dir), None, None, config=config)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(0))
    packed = PackedBatch(queries, responses, PAD_ID)
    minibatches = packed.minibatches(perm, 4, True, torch.Generator().manual_seed(1))
    assert sorted(i for mb in minibatches for i in mb) == list(range(12))
    spans = sorted((min(len(responses[i]) for i in mb), max(len(responses[i]) for i in mb)) for mb in minibatches)
    assert all(hi <= lo_next for (_, hi), (lo_next, _) in zip(spans, spans[1:])), spans  # no overlap

    stats = trainer.step(queries, responses, scores)
    assert trainer.minibatch_stats[0]["ppo/policy/ratio_max_dev"] < 1e-5
    assert abs(stats["objective/kl"]) < 1e-6


# -- determinism -----------------------------------------------------------------------------
def _two_steps(path: str, seed: int):
    model = ValueHeadModel.from_pretrained(path)
    config = PPOConfig(
        batch_size=6, forward_batch_size=4, mini_batch_size=2, lr=1e-3, seed=seed, use_score_scaling=True
    )
    trainer = PPOTrainer(model, None, None, config=config)
    stats = [trainer.step(*varied_batch(6, seed=s)) for s in (1, 2)]
    return stats, weights(model)


def test_same_seed_same_inputs_same_stats_and_weights(gpt2_dir):
    stats_a, weights_a = _two_steps(gpt2_dir, seed=0)
    stats_b, weights_b = _two_steps(gpt2_dir, seed=0)
    for a, b in zip(stats_a, stats_b):
        assert a.keys() == b.keys()
        for key in a:
            if not key.startswith("time/"):
                assert np.array_equal(a[key], b[key]), key
    assert all(torch.equal(weights_a[n], weights_b[n]) for n in weights_a)

    start = weights(ValueHeadModel.from_pretrained(gpt2_dir))
    assert any(not torch.equal(weights_a[n], start[n]) for n in start)
    _, weights_c = _two_steps(gpt2_dir, seed=1)  # another shuffling seed: another result
    assert any(not torch.equal(weights_a[n], weights_c[n]) for n in weights_a)


# -- bad input -------------------------------------------------------------------------------
def _good():
    queries = [torch.tensor([1, 2, 3]), torch.tensor([4, 5])]
    responses = [torch.tensor([6, 7]), torch.tensor([8, 9, 10])]
    return queries, responses, [1.0, -1.0]


BAD_INPUTS = {
    "lists of different lengths": (lambda q, r, s: (q, r[:1], s), "different lengths.*responses"),
    "empty response": (lambda q, r, s: (q, [r[0], torch.tensor([], dtype=torch.long)], s), r"responses\[1\]"),
    "non-finite score": (lambda q, r, s: (q, r, [1.0, float("nan")]), "scores"),
    "2-D query tensor": (lambda q, r, s: ([q[0][None], q[1]], r, s), r"queries\[0\]"),
    "float token tensor": (lambda q, r, s: (q, [r[0].float(), r[1]], s), r"responses\[0\]"),
    "token id >= vocab": (lambda q, r, s: ([q[0], torch.tensor([1, VOCAB])], r, s), r"queries\[1\]"),
    "wrong number of samples": (lambda q, r, s: (q * 2, r * 2, s * 2), "batch_size"),
}


def test_bad_input_raises_before_anything_changes(gpt2_dir):
    model = ValueHeadModel.from_pretrained(gpt2_dir)
    config = PPOConfig(batch_size=2, forward_batch_size=2, mini_batch_size=1, lr=1e-3, use_score_scaling=True)
    trainer = PPOTrainer(model, None, None, config=config)
    trainer.step(*_good())  # optimizer state and score statistics exist now
    params = weights(model)
    state = copy.deepcopy(trainer.state_dict())
    assert state["optimizer"]["state"]

    for name, (corrupt, message) in BAD_INPUTS.items():
        with pytest.raises(ValueError, match=message):
            trainer.step(*corrupt(*_good()))
        assert all(torch.equal(p, params[n]) for n, p in model.named_parameters()), name
        assert_same_state(trainer.state_dict(), state, name)


# -- numbers recorded while sampling ----------------------------------------------------------
def _sample(model, path, temperature=1.0, top_k=0, seed=0):
    from transformers import AutoTokenizer

    from promptrl.ppo.sampling import PromptGenerationConfig, PromptGenerator

    config = PromptGenerationConfig(max_new_tokens=10, temperature=temperature, top_k=top_k)
    generator = PromptGenerator(model, AutoTokenizer.from_pretrained(path), config)
    generator.stop_ids += list(range(30))  # a random model rarely says EOS: stop early and often
    torch.manual_seed(seed)
    return generator(["a cat", "a lighthouse in a storm", "x", "two dogs on a beach at dawn"], record=True)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("arch", ["gpt2", "bloom"])
def test_numbers_recorded_while_sampling_are_the_rollout_pass(arch, temperature, lora, request, lora_config):
    """Sampling with record=True gives, per response token, the log-prob, value and entropy
    that PPO's own no-grad pass over the policy computes (KV cache vs full forward: float noise)."""
    path = request.getfixturevalue(f"{arch}_dir")
    model = ValueHeadModel.from_pretrained(path, peft_config=lora_config(arch) if lora else None)
    torch.nn.init.normal_(model.v_head.weight, std=0.5)  # non-zero values, so alignment shows
    rollout = _sample(model, path, temperature)
    lengths = [len(r) for r in rollout.responses]
    assert len(set(lengths)) > 1, lengths  # stops at EOS/newline: responses of several lengths
    trainer = PPOTrainer(model, None, None, config=PPOConfig(batch_size=4, temperature=temperature))
    expected = trainer.rollout_pass(rollout.queries, rollout.responses)
    for name in ("logprobs", "values", "entropy"):
        for i, n in enumerate(lengths):
            got = getattr(rollout.recorded, name)[i]
            assert got.shape == (n,), name
            torch.testing.assert_close(got, getattr(expected, name)[i, :n], rtol=0, atol=2e-5, msg=name)


def test_a_step_given_the_record_skips_the_policy_pass_and_does_the_same(gpt2_dir, monkeypatch):
    model = ValueHeadModel.from_pretrained(gpt2_dir)
    torch.nn.init.normal_(model.v_head.weight, std=0.5)
    rollout = _sample(model, gpt2_dir)
    scores = [1.0, -0.5, 0.25, 2.0]
    config = PPOConfig(batch_size=4, mini_batch_size=2, forward_batch_size=2, lr=1e-3)
    plain = PPOTrainer(copy.deepcopy(model), None, None, config=config)
    given = PPOTrainer(copy.deepcopy(model), None, None, config=config)
    passes = []
    forward = given._forward
    monkeypatch.setattr(given, "_forward", lambda m, b: passes.append(m is given.model) or forward(m, b))

    expected = plain.step(rollout.queries, rollout.responses, scores)
    stats = given.step(rollout.queries, rollout.responses, scores, rollout.recorded)
    # Rollout: 2 chunks, reference only; then 4 epochs x 2 minibatches of the policy.
    assert passes == [False, False] + [True] * 8
    for key, value in expected.items():
        if isinstance(value, float) and not key.startswith("time/"):
            assert stats[key] == pytest.approx(value, rel=1e-3, abs=1e-5), key
    a, b = weights(plain.policy), weights(given.policy)
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5


def test_sampling_with_top_k_records_nothing(gpt2_dir):
    with pytest.raises(ValueError, match="top_k=5"):
        _sample(ValueHeadModel.from_pretrained(gpt2_dir), gpt2_dir, top_k=5)


def test_a_record_that_does_not_fit_the_responses_is_refused_before_anything_changes(gpt2_dir):
    model = ValueHeadModel.from_pretrained(gpt2_dir)
    rollout = _sample(model, gpt2_dir)
    trainer = PPOTrainer(model, None, None, config=PPOConfig(batch_size=4))
    before = weights(model)
    rollout.recorded.values[2] = rollout.recorded.values[2][:-1]
    with pytest.raises(ValueError, match=r"recorded.values\[2\]"):
        trainer.step(rollout.queries, rollout.responses, [0.0] * 4, rollout.recorded)
    rollout.recorded.values[2] = torch.full_like(rollout.recorded.logprobs[2], float("nan"))
    with pytest.raises(ValueError, match="non-finite"):
        trainer.step(rollout.queries, rollout.responses, [0.0] * 4, rollout.recorded)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert trainer.current_step == 0


# -- LoRA --------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["gpt2", "bloom"])
def test_lora_trains_only_adapter_and_value_head_against_disabled_adapter(arch, request, lora_config):
    path = request.getfixturevalue(f"{arch}_dir")
    model = ValueHeadModel.from_pretrained(path, peft_config=lora_config(arch))
    start = weights(model)
    config = PPOConfig(batch_size=6, forward_batch_size=4, mini_batch_size=2, lr=1e-2)
    trainer = PPOTrainer(model, None, None, config=config)
    assert trainer.ref_model is None  # the reference is the base model: no second copy

    stats = trainer.step(*varied_batch(6))
    assert trainer.minibatch_stats[0]["ppo/policy/ratio_max_dev"] < 1e-5
    assert abs(stats["objective/kl"]) < 1e-6

    changed = {n for n, p in model.named_parameters() if not torch.equal(p, start[n])}
    assert all("lora_" in n or n.startswith("v_head") for n in changed), changed
    assert any("lora_B" in n for n in changed) and any(n.startswith("v_head") for n in changed)

    # The adapter has moved; the reference (adapter disabled) has not: KL is no longer 0.
    stats = trainer.step(*varied_batch(6))
    assert abs(stats["objective/kl"]) > 1e-4


# -- learning ----------------------------------------------------------------------------------
TARGET_TOKENS = torch.tensor([3, 7])


@pytest.mark.slow
def test_ppo_learns_a_token_reward(make_tiny_lm, tmp_path):
    """Reward = number of response tokens in {3, 7} (of a 16-token vocabulary), 8 tokens per
    response. The start samples ~2/16 = 0.125 of them; the KL-regularised optimum at kl_coef
    0.2 is ~0.95 (target tokens weighted by e^(1/0.2)). Measured: > 0.85 after 20 steps for
    several seeds. Asserted: the first step's fraction < 0.2, the mean of steps 21-25 > 0.8."""
    path = make_tiny_lm(tmp_path / "lm", "gpt2", with_tokenizer=False, vocab_size=16)
    torch.manual_seed(0)
    model = ValueHeadModel.from_pretrained(path)
    config = PPOConfig(batch_size=32, forward_batch_size=32, mini_batch_size=8, lr=1e-3)
    trainer = PPOTrainer(model, None, None, config=config)
    fractions, kls = [], []
    for _ in range(25):
        queries = torch.randint(0, 16, (32, 4))
        responses = respond_to_batch(model, queries, txt_len=8)
        hits = torch.isin(responses, TARGET_TOKENS).float()
        stats = trainer.step(list(queries), list(responses), hits.sum(1))
        fractions.append(hits.mean().item())
        kls.append(stats["objective/kl"])

    assert fractions[0] < 0.2, fractions
    assert np.mean(fractions[-5:]) > 0.8, fractions
    assert np.all(np.isfinite(kls)) and max(kls) < 50, kls


@pytest.mark.slow
def test_ppo_learns_a_token_reward_with_variable_response_lengths(make_tiny_lm, tmp_path):
    """The same reward on responses cut to 2..8 tokens (queries 2..6), so every minibatch mixes
    lengths and padding: the target-token fraction must still rise from ~0.125."""
    path = make_tiny_lm(tmp_path / "lm", "gpt2", with_tokenizer=False, vocab_size=16)
    torch.manual_seed(0)
    model = ValueHeadModel.from_pretrained(path)
    config = PPOConfig(batch_size=32, forward_batch_size=32, mini_batch_size=8, lr=1e-3)
    trainer = PPOTrainer(model, None, None, config=config)
    g = torch.Generator().manual_seed(0)
    fractions = []
    for _ in range(25):
        q_lens = torch.randint(2, 7, (32,), generator=g).tolist()
        r_lens = torch.randint(2, 9, (32,), generator=g).tolist()
        queries = [torch.randint(0, 16, (n,), generator=g) for n in q_lens]
        responses = [respond_to_batch(model, q[None], txt_len=n)[0] for q, n in zip(queries, r_lens)]
        hits = [torch.isin(r, TARGET_TOKENS).float() for r in responses]
        trainer.step(queries, responses, [h.sum() for h in hits])
        fractions.append(torch.cat(hits).mean().item())

    assert fractions[0] < 0.2, fractions
    assert np.mean(fractions[-5:]) > 0.7, fractions
