"""Rollouts (generation.py): the template, where a prompt ends, the rollout statistics,
per-call overrides, trl 0.1's respond_to_batch, and the logit filters by hand."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from conftest import EOS_ID, byte_tokenizer
from torch import nn

from promptrl.ppo.sampling import (
    PromptGenerationConfig,
    PromptGenerator,
    cut_at_stop,
    filter_logits,
    newline_token_ids,
    respond_to_batch,
)
from promptrl.ppo.value_head import ValueHeadModel

TEMPLATE = "Idea: {idea}\nPrompt:"


class Scripted(nn.Module):
    """A stand-in policy whose `generate` appends fixed continuations, one per row, and
    records the generation config it was given."""

    def __init__(self, continuations: list[list[int]]):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.continuations = torch.tensor(continuations)
        self.calls = []

    def generate(self, input_ids, attention_mask, generation_config):
        self.calls.append(generation_config)
        return torch.cat([input_ids, self.continuations[: len(input_ids)]], dim=1)


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False).input_ids


@pytest.fixture
def tokenizer():
    return byte_tokenizer()


def test_template_is_applied_and_left_padding_is_removed_from_queries(tokenizer):
    model = Scripted([[EOS_ID]] * 2)
    gen = PromptGenerator(model, tokenizer, PromptGenerationConfig(template=TEMPLATE, max_new_tokens=1))
    assert gen.queries(["a cat", "a lighthouse"]) == [
        "Idea: a cat\nPrompt:",
        "Idea: a lighthouse\nPrompt:",
    ]
    rollout = gen(["a cat", "a lighthouse"])
    assert [tokenizer.decode(q) for q in rollout.queries] == gen.queries(["a cat", "a lighthouse"])
    assert tokenizer.padding_side == "left"  # batched sampling continues every row at its end


def test_responses_end_at_eos_or_newline_and_stats_count_them(tokenizer):
    newline = ids(tokenizer, "\n")
    assert newline[0] in newline_token_ids(tokenizer)
    rows = [
        ids(tokenizer, " red") + [EOS_ID] + ids(tokenizer, "x"),  # EOS after 4 tokens, then junk
        ids(tokenizer, " sea") + newline + ids(tokenizer, "z"),  # a newline ends it too
        ids(tokenizer, " big sky"),  # 8 tokens: no stop, cut by max_new_tokens
        ids(tokenizer, "  a b  ") + [EOS_ID],  # spaces around it are stripped
    ]
    width = max(len(r) for r in rows)
    rows = [r + [EOS_ID] * (width - len(r)) for r in rows]
    gen = PromptGenerator(Scripted(rows), tokenizer, PromptGenerationConfig(max_new_tokens=8))
    rollout = gen(["i1", "i2", "i3", "i4"])
    assert rollout.prompts == ["red", "sea", "big sky", "a b"]
    assert [len(r) for r in rollout.responses] == [5, 5, 8, 8]  # the stop token is kept
    assert rollout.responses[0][-1].item() == EOS_ID and rollout.responses[1][-1].item() == newline[0]
    assert rollout.ideas == ["i1", "i2", "i3", "i4"]
    # lengths 5, 5, 8, 8: mean 6.5; two of four reached max_new_tokens
    assert rollout.stats == {"rollout/response_len_mean": 6.5, "rollout/hit_max_tokens": 0.5}


def test_newline_does_not_stop_when_turned_off(tokenizer):
    row = ids(tokenizer, " a\nb") + [EOS_ID]
    gen = PromptGenerator(Scripted([row]), tokenizer, PromptGenerationConfig(max_new_tokens=5, stop_at_newline=False))
    assert gen.stop_ids == [EOS_ID]
    rollout = gen(["i"])
    assert len(rollout.responses[0]) == 5
    assert rollout.prompts == ["a"]  # the prompt still ends at its first line


def test_overrides_change_one_call_only(tokenizer):
    model = Scripted([[EOS_ID]])
    gen = PromptGenerator(model, tokenizer, PromptGenerationConfig(max_new_tokens=7, temperature=0.9))
    gen(["i"], max_new_tokens=3, temperature=0.5)
    gen(["i"])
    first, second = model.calls
    assert (first.max_new_tokens, first.temperature) == (3, 0.5)
    assert (second.max_new_tokens, second.temperature) == (7, 0.9)
    assert second.do_sample and second.top_k == 0 and second.top_p == 1.0  # full softmax: unbiased KL
    assert EOS_ID in second.eos_token_id and set(newline_token_ids(tokenizer)) <= set(second.eos_token_id)
    assert second.pad_token_id == tokenizer.pad_token_id


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"template": "no idea here"}, "{idea}"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"temperature": 0.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_k": -1}, "top_k"),
    ],
)
def test_bad_generation_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        PromptGenerationConfig(**kwargs)


def test_real_model_prompts_fit_the_limits(gpt2_dir):
    tokenizer = byte_tokenizer()
    model = ValueHeadModel.from_pretrained(gpt2_dir)
    torch.manual_seed(0)
    rollout = PromptGenerator(model, tokenizer, PromptGenerationConfig(template=TEMPLATE, max_new_tokens=6))(
        ["a cat", "a much longer idea"]
    )
    assert all(1 <= len(r) <= 6 for r in rollout.responses)
    assert all("\n" not in p for p in rollout.prompts)
    assert [tokenizer.decode(q) for q in rollout.queries] == [
        "Idea: a cat\nPrompt:",
        "Idea: a much longer idea\nPrompt:",
    ]


class AlwaysEOS(nn.Module):
    """An LM whose next token is always EOS; records the shapes it was called with."""

    def __init__(self, vocab: int = 258):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.vocab = vocab
        self.seen = []

    def forward(self, input_ids, attention_mask, use_cache, past_key_values=None):
        self.seen.append((tuple(input_ids.shape), tuple(attention_mask.shape), past_key_values))
        logits = torch.full((*input_ids.shape, self.vocab), -10.0)
        logits[..., EOS_ID] = 10.0
        return SimpleNamespace(logits=logits, past_key_values=len(self.seen))


def test_respond_to_batch_samples_exactly_txt_len_tokens_past_eos():
    lm = AlwaysEOS()
    queries = torch.tensor([[1, 2, 3], [4, 5, 6]])
    out = respond_to_batch(SimpleNamespace(pretrained_model=lm), queries, txt_len=4, top_k=1)
    assert out.shape == (2, 4) and bool((out == EOS_ID).all())  # EOS does not stop it (trl 0.1)
    # the query once, then one token at a time on the cache, the mask growing by one
    assert [s[0] for s in lm.seen] == [(2, 3), (2, 1), (2, 1), (2, 1)]
    assert [s[1] for s in lm.seen] == [(2, 3), (2, 4), (2, 5), (2, 6)]
    assert [s[2] for s in lm.seen] == [None, 1, 2, 3]


def test_respond_to_batch_on_a_value_head_model(gpt2_dir):
    model = ValueHeadModel.from_pretrained(gpt2_dir)
    out = respond_to_batch(model, torch.tensor([[10, 20, 30, 40], [50, 60, 70, 80]]), txt_len=7)
    assert out.shape == (2, 7) and out.dtype == torch.long
    with pytest.raises(ValueError, match="2-D"):
        respond_to_batch(model, torch.tensor([1, 2, 3]))


def test_cut_at_stop():
    t = torch.tensor([5, 7, 3, 9, 3])
    assert cut_at_stop(t, [3]).tolist() == [5, 7, 3]  # up to and including the first stop
    assert cut_at_stop(t, [9, 7]).tolist() == [5, 7]  # whichever stop id comes first
    assert cut_at_stop(t, [5]).tolist() == [5]
    assert cut_at_stop(t, [42]).tolist() == [5, 7, 3, 9, 3]  # none: everything


def test_filter_logits_top_k():
    out = filter_logits(torch.tensor([[1.0, 3.0, 2.0, 0.0]]), top_k=2)
    assert out.tolist() == [[-math.inf, 3.0, 2.0, -math.inf]]
    assert filter_logits(torch.tensor([[1.0, 2.0]]), top_k=5).tolist() == [[1.0, 2.0]]  # k beyond the vocab


def test_filter_logits_top_p_by_hand():
    # probabilities 0.15, 0.5, 0.05, 0.3 (unsorted on purpose). Sorted: 0.5, 0.3, 0.15, 0.05,
    # mass before each: 0, 0.5, 0.8, 0.95. A token is dropped when the mass before it is
    # already >= top_p: top_p 0.7 keeps 0.5 and 0.3; top_p 0.45 keeps 0.5 alone.
    probs = torch.tensor([[0.15, 0.5, 0.05, 0.3]])
    logits = probs.log()
    kept = filter_logits(logits, top_p=0.7)
    assert torch.isinf(kept).tolist() == [[True, False, True, False]]
    assert kept[0, 1] == logits[0, 1] and kept[0, 3] == logits[0, 3]
    assert torch.isinf(filter_logits(logits, top_p=0.45)).tolist() == [[True, False, True, True]]
    assert torch.equal(filter_logits(logits), logits)  # both off: untouched
