"""ValueHeadModel: loading, dropout, value head, save/load round trips (plain and LoRA)."""

import logging

import pytest
import torch

from promptrl.bloom import BloomHeadWithValueModel
from promptrl.gpt2 import GPT2HeadWithValueModel
from promptrl.ppo.value_head import VALUE_HEAD_FILE, ValueHeadModel

# Tiny models gain nothing from a second thread, and lose a lot on a busy machine.
pytestmark = pytest.mark.usefixtures("one_thread")


def _inputs(vocab: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, :4] = 0  # one left-padded row
    return ids, mask


def _train_a_little(model: ValueHeadModel, steps: int = 5) -> None:
    """Move the LM and the value head away from their start (values toward 1)."""
    ids, mask = _inputs(model.vocab_size, seed=1)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(steps):
        logits, _, values = model(ids, attention_mask=mask)
        loss = ((values - 1.0) ** 2).mean() + logits.logsumexp(-1).mean() * 1e-3
        loss.backward()
        opt.step()
        opt.zero_grad()


def test_seed_classes_check_the_architecture(gpt2_dir, bloom_dir):
    with pytest.raises(ValueError, match="gpt2.*bloom"):
        GPT2HeadWithValueModel.from_pretrained(bloom_dir)
    with pytest.raises(ValueError, match="bloom.*gpt2"):
        BloomHeadWithValueModel.from_pretrained(gpt2_dir)
    assert isinstance(GPT2HeadWithValueModel.from_pretrained(gpt2_dir), ValueHeadModel)
    assert isinstance(BloomHeadWithValueModel.from_pretrained(bloom_dir), ValueHeadModel)


def test_plain_lm_dir_gets_a_zero_value_head_and_says_so_once(lm_dir, caplog):
    with caplog.at_level(logging.DEBUG, logger="promptrl"):
        model = ValueHeadModel.from_pretrained(lm_dir)
    notes = [r for r in caplog.records if "value head" in r.getMessage()]
    assert len(notes) == 1, [r.getMessage() for r in caplog.records]
    assert notes[0].levelno == logging.DEBUG  # a detail: the run's log file and --verbose
    ids, mask = _inputs(model.vocab_size)
    _, _, values = model(ids, attention_mask=mask)
    assert values.shape == ids.shape
    assert values.abs().max() == 0
    assert model.v_head.out_features == 1


def test_dropout_is_off_even_in_train_mode(lm_dir):
    """The tiny configs keep dropout 0.1: two train-mode forwards must still agree exactly."""
    model = ValueHeadModel.from_pretrained(lm_dir).train()
    ids, mask = _inputs(model.vocab_size)
    _train_a_little(model, steps=1)  # a non-zero head, so values would show dropout too
    a = model(ids, attention_mask=mask)
    b = model(ids, attention_mask=mask)
    assert torch.equal(a.logits, b.logits)
    assert torch.equal(a.values, b.values)


def test_tanh_gelus_run_fused_with_the_same_outputs_and_gradients(lm_dir):
    """GPT-2's gelu_new and BLOOM's BloomGelu become one fused kernel: same logits and
    gradients as the stock model, to float rounding."""
    from transformers import AutoModelForCausalLM

    from promptrl.ppo.value_head import TanhGELU, _tanh_gelu_classes

    x = torch.linspace(-6, 6, 1201, requires_grad=True)
    for slow in _tanh_gelu_classes():  # where exact GELU and its tanh approximation differ most
        expected = torch.autograd.grad(slow()(x).sum(), x)[0]
        got = torch.autograd.grad(TanhGELU()(x).sum(), x)[0]
        torch.testing.assert_close(TanhGELU()(x), slow()(x), rtol=0, atol=1e-6)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)

    stock = AutoModelForCausalLM.from_pretrained(lm_dir)
    model = ValueHeadModel.from_pretrained(lm_dir)
    stock.load_state_dict(model.pretrained_model.state_dict())
    stock.config.use_cache = False
    for m in stock.modules():  # match ValueHeadModel's dropout-free forward
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    assert not any(isinstance(m, _tanh_gelu_classes()) for m in model.modules())
    assert sum(isinstance(m, TanhGELU) for m in model.modules()) == 2  # one per layer
    assert sum(isinstance(m, _tanh_gelu_classes()) for m in stock.modules()) == 2
    ids, mask = _inputs(model.vocab_size)
    stock_logits = stock(input_ids=ids, attention_mask=mask).logits
    fused_logits = model(ids, attention_mask=mask).logits
    torch.testing.assert_close(fused_logits, stock_logits, rtol=0, atol=1e-5)
    stock_logits.logsumexp(-1).sum().backward()
    fused_logits.logsumexp(-1).sum().backward()
    stock_grads = dict(stock.named_parameters())
    for name, p in model.pretrained_model.named_parameters():
        torch.testing.assert_close(p.grad, stock_grads[name].grad, rtol=1e-4, atol=1e-5, msg=name)


def test_logits_to_keep_returns_the_last_positions(lm_dir):
    model = ValueHeadModel.from_pretrained(lm_dir)
    ids, mask = _inputs(model.vocab_size)
    full = model(ids, attention_mask=mask)
    last = model(ids, attention_mask=mask, logits_to_keep=4)
    assert last.logits.shape[1] == 4
    torch.testing.assert_close(last.logits, full.logits[:, -4:], rtol=0, atol=1e-5)
    assert torch.equal(last.values, full.values)


def test_save_and_load_round_trip(lm_dir, tmp_path):
    model = ValueHeadModel.from_pretrained(lm_dir)
    _train_a_little(model)
    assert model.v_head.weight.abs().max() > 0
    model.save_pretrained(tmp_path)
    assert (tmp_path / VALUE_HEAD_FILE).exists()

    loaded = ValueHeadModel.from_pretrained(tmp_path)
    ids, mask = _inputs(model.vocab_size)
    before, after = model(ids, attention_mask=mask), loaded(ids, attention_mask=mask)
    assert torch.equal(before.logits, after.logits)
    assert torch.equal(before.values, after.values)
    assert before.values.abs().max() > 0.1


@pytest.mark.parametrize("arch", ["gpt2", "bloom"])
def test_lora_round_trip(arch, request, tmp_path, lora_config):
    base_dir = request.getfixturevalue(f"{arch}_dir")
    model = ValueHeadModel.from_pretrained(base_dir, peft_config=lora_config(arch))
    assert model.is_peft_model
    _train_a_little(model)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "adapter_config.json").exists()

    loaded = ValueHeadModel.from_pretrained(tmp_path)
    assert loaded.is_peft_model
    trainable = {n for n, p in loaded.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("v_head") for n in trainable)
    ids, mask = _inputs(model.vocab_size)
    before, after = model(ids, attention_mask=mask), loaded(ids, attention_mask=mask)
    assert torch.equal(before.logits, after.logits)
    assert torch.equal(before.values, after.values)
    with loaded.disabled_adapter():  # the adapter was trained: disabling it changes the logits
        base = loaded(ids, attention_mask=mask)
    assert not torch.allclose(base.logits, after.logits)
