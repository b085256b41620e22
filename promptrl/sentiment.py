"""trl 0.1's example on the trl 0.1-compatible API: GPT-2 learns to write positive movie reviews.

A sentiment classifier reads query + response and its positive logit is the reward, as in
trl's `04-gpt2-sentiment-ppo-training` notebook (`notebooks/sentiment_gpt2.ipynb` runs it).

- Real models: `lvwerra/gpt2-imdb` (GPT-2 fine-tuned on IMDB reviews) writes, and
  `lvwerra/distilbert-imdb` (DistilBERT trained on IMDB sentiment) judges; queries are the
  first few tokens of IMDB reviews (`datasets.load_dataset("imdb")`).
- Offline (`build_tiny_sentiment`): a tiny random GPT-2 and a tiny random DistilBERT classifier
  that share a byte-level BPE trained on the bundled review openings (`data/reviews.txt`).
  A random classifier's positive logit is still a fixed function of the tokens, so PPO can
  learn to raise it: the loop is the same, only the meaning of "positive" is arbitrary.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import torch

from .generation import respond_to_batch
from .paths import build_atomically, default_cache_dir
from .devices import resolve_device
from .tiny_models import SEED, train_policy_tokenizer

BUNDLED_REVIEWS = Path(__file__).parent / "data" / "reviews.txt"
LM_NAME = "lvwerra/gpt2-imdb"
CLASSIFIER_NAME = "lvwerra/distilbert-imdb"
TINY_VOCAB_SIZE = 1000
LABELS = {0: "NEGATIVE", 1: "POSITIVE"}


def load_reviews(source: str = "bundled", min_chars: int = 200) -> list[str]:
    """Review texts to cut queries from.

    "bundled": the review openings in `promptrl/data/reviews.txt` (offline);
    "imdb": the IMDB training reviews longer than `min_chars` (needs the hub, via `datasets`).
    """
    if source == "bundled":
        lines = BUNDLED_REVIEWS.read_text(encoding="utf-8").splitlines()
        return [line.strip() for line in lines if line.strip()]
    if source == "imdb":
        import datasets

        ds = datasets.load_dataset("imdb", split="train")
        return [t for t in ds["text"] if len(t) > min_chars]
    raise ValueError(f"Unknown review source {source!r}; use 'bundled' or 'imdb'.")


def review_queries(
    texts: Sequence[str], tokenizer, min_len: int = 2, max_len: int = 8, seed: int = 0
) -> list[torch.Tensor]:
    """The first n tokens of each text, n drawn uniformly from [min_len, max_len] (seeded).

    Returns 1-D token tensors; texts shorter than n tokens give all their tokens.
    """
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len; got min_len={min_len}, max_len={max_len}.")
    rng = random.Random(seed)
    queries = []
    for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        ids = ids[: rng.randint(min_len, max_len)]
        if ids:
            queries.append(torch.tensor(ids, dtype=torch.long))
    if not queries:
        raise ValueError("No queries: every text tokenized to nothing.")
    return queries


def respond_by_length(model, queries: Sequence[torch.Tensor], txt_len: int | Sequence[int]) -> list[torch.Tensor]:
    """`respond_to_batch` for queries of different lengths, without padding: one batched call
    per query length.

    `txt_len`: response length, one for all or one per query (each group samples its longest
    and cuts the others: sampling is left to right, so a cut response is distributed exactly
    as one sampled to that length). Returns 1-D responses on the CPU, in the queries' order.
    """
    lengths = [txt_len] * len(queries) if isinstance(txt_len, int) else [int(n) for n in txt_len]
    if len(lengths) != len(queries):
        raise ValueError(f"got {len(lengths)} response lengths for {len(queries)} queries.")
    by_len: dict[int, list[int]] = {}
    for i, q in enumerate(queries):
        by_len.setdefault(len(q), []).append(i)
    responses: list[torch.Tensor] = [torch.empty(0)] * len(queries)
    for idx in by_len.values():
        out = respond_to_batch(
            model, torch.stack([queries[i] for i in idx]), txt_len=max(lengths[i] for i in idx)
        ).cpu()
        for i, row in zip(idx, out):
            responses[i] = row[: lengths[i]]
    return responses


class SentimentReward:
    """The positive logit of a sequence classifier: texts -> `[batch]` float tensor.

    Args:
        name_or_path: a hub name or local directory of a sentiment classifier with a
            `POSITIVE` label (else label 1 is taken as positive), and its tokenizer.
        device: where to run it (default: CUDA when available).
        batch_size: texts per forward pass.
    """

    def __init__(
        self, name_or_path: str = CLASSIFIER_NAME, device: str | torch.device | None = None, batch_size: int = 16
    ):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.device = resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        self.model = AutoModelForSequenceClassification.from_pretrained(name_or_path).to(self.device).eval()
        label2id = {k.upper(): v for k, v in (self.model.config.label2id or {}).items()}
        self.positive = int(label2id.get("POSITIVE", 1))
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        """Positive logit of each text, `[batch]` on the CPU."""
        out = []
        for start in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(
                list(texts[start : start + self.batch_size]), return_tensors="pt", padding=True, truncation=True
            ).to(self.device)
            logits = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
            out.append(logits[:, self.positive].float().cpu())
        return torch.cat(out)


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
