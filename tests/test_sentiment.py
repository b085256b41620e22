"""The sentiment example's package-side pieces (the notebook itself runs in test_notebooks.py)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from promptrl.gpt2 import GPT2HeadWithValueModel
from promptrl.ppo.sentiment import (
    SentimentReward,
    load_reviews,
    respond_by_length,
    review_queries,
)
from promptrl.standins.sentiment import build_tiny_sentiment


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_sentiment()


def test_bundled_reviews_and_queries(tiny):
    reviews = load_reviews("bundled")
    assert len(reviews) >= 120 and all(r.strip() == r and r for r in reviews)
    tokenizer = AutoTokenizer.from_pretrained(tiny["lm"])
    queries = review_queries(reviews[:20], tokenizer, min_len=2, max_len=4, seed=1)
    assert len(queries) == 20 and all(1 <= len(q) <= 4 and q.dtype == torch.long for q in queries)
    assert [q.tolist() for q in queries] == [q.tolist() for q in review_queries(reviews[:20], tokenizer, 2, 4, seed=1)]
    with pytest.raises(ValueError, match="min_len"):
        review_queries(reviews, tokenizer, min_len=5, max_len=2)
    with pytest.raises(ValueError, match="Unknown review source"):
        load_reviews("elsewhere")


def test_respond_by_length_keeps_order_and_lengths(tiny):
    model = GPT2HeadWithValueModel.from_pretrained(tiny["lm"])
    queries = [torch.tensor([5, 6]), torch.tensor([7, 8, 9]), torch.tensor([10, 11]), torch.tensor([12])]
    torch.manual_seed(0)
    responses = respond_by_length(model, queries, [3, 5, 4, 2])
    assert [len(r) for r in responses] == [3, 5, 4, 2]
    assert all(int(r.max()) < model.vocab_size for r in responses)
    with pytest.raises(ValueError, match="response lengths"):
        respond_by_length(model, queries, [3, 5])


def test_sentiment_reward_is_the_positive_logit(tiny):
    reward = SentimentReward(tiny["classifier"], device="cpu", batch_size=3)
    texts = ["this movie was great", "the acting was dull", "i went to see it", "a film", "the end"]
    scores = reward(texts)
    assert scores.shape == (5,) and torch.isfinite(scores).all()
    enc = reward.tokenizer(texts[:1], return_tensors="pt")
    with torch.no_grad():
        expected = reward.model(**enc).logits[0, reward.positive]
    assert scores[0].item() == pytest.approx(expected.item(), abs=1e-5)
    assert scores.std() > 0  # depends on the text
