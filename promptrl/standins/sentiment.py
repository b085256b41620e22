"""Offline stand-ins for trl 0.1's sentiment example (`promptrl.ppo.sentiment`).

A tiny random GPT-2 and a tiny random DistilBERT classifier that share a byte-level BPE trained
on the bundled review openings. A random classifier's positive logit is still a fixed function
of the tokens, so PPO can learn to raise it: the loop is the same, only the meaning of
"positive" is arbitrary.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..paths import build_atomically, default_cache_dir
from ..ppo.sentiment import load_reviews
from .builders import SEED, train_policy_tokenizer

TINY_VOCAB_SIZE = 1000
LABELS = {0: "NEGATIVE", 1: "POSITIVE"}


def build_tiny_sentiment(cache_dir: str | Path | None = None) -> dict[str, str]:
    """Build (once, cached) the offline stand-ins of the real models.

    Returns `{"lm": dir, "classifier": dir}`: a tiny GPT-2 (hidden 64, 2 layers) and a tiny
    DistilBERT classifier (dim 32, 2 layers, labels NEGATIVE/POSITIVE), both random, both with
    the same byte-level BPE trained on the bundled reviews (the classifier's adds a leading
    `<s>` as its [CLS] token). The classifier's output layer is standardised so its logits have
    mean 0 and std 1 over the bundled reviews, like the real classifier's logits (a few units),
    rather than the near-constant output of a random init.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    reviews = load_reviews("bundled")

    def build_lm(tmp: Path) -> None:
        from transformers import GPT2Config, GPT2LMHeadModel

        tokenizer = train_policy_tokenizer(iter(reviews), vocab_size=TINY_VOCAB_SIZE)
        torch.manual_seed(SEED)
        config = GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=128,
            n_embd=64,
            n_layer=2,
            n_head=4,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        model = GPT2LMHeadModel(config)
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    lm = build_atomically(root / "sentiment-gpt2", "config.json", build_lm)

    def build_classifier(tmp: Path) -> None:
        from tokenizers import processors
        from transformers import (
            AutoTokenizer,
            DistilBertConfig,
            DistilBertForSequenceClassification,
        )

        tokenizer = AutoTokenizer.from_pretrained(lm)
        # DistilBERT classifies from the first position: make it a fixed token that attends to
        # the whole text, as BERT's [CLS] does, not the text's own first token.
        cls = tokenizer.bos_token_id
        tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A $B", special_tokens=[(tokenizer.bos_token, cls)]
        )
        tokenizer.model_input_names = ["input_ids", "attention_mask"]
        tokenizer.padding_side = "right"
        torch.manual_seed(SEED + 1)
        config = DistilBertConfig(
            vocab_size=len(tokenizer),
            max_position_embeddings=128,
            dim=32,
            n_layers=2,
            n_heads=2,
            hidden_dim=64,
            pad_token_id=tokenizer.pad_token_id,
            id2label=LABELS,
            label2id={v: k for k, v in LABELS.items()},
        )
        model = DistilBertForSequenceClassification(config).eval()
        with torch.no_grad():
            enc = tokenizer(reviews, return_tensors="pt", padding=True)
            logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
            mean, std = logits.mean(0), logits.std(0).clamp(min=1e-6)
            model.classifier.weight.div_(std[:, None])
            model.classifier.bias.sub_(mean).div_(std)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    classifier = build_atomically(root / "sentiment-classifier", "config.json", build_classifier)
    return {"lm": str(lm), "classifier": str(classifier)}
