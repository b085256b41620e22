"""trl 0.1's example on the trl 0.1-compatible API: GPT-2 learns to write positive movie reviews.

A sentiment classifier reads query + response and its positive logit is the reward, as in
trl's `04-gpt2-sentiment-ppo-training` notebook (`notebooks/sentiment_gpt2.ipynb` runs it).

- Real models: `lvwerra/gpt2-imdb` (GPT-2 fine-tuned on IMDB reviews) writes, and
  `lvwerra/distilbert-imdb` (DistilBERT trained on IMDB sentiment) judges; queries are the
  first few tokens of IMDB reviews (`datasets.load_dataset("imdb")`).
- Offline: `promptrl.standins.sentiment.build_tiny_sentiment` builds tiny random stand-ins of
  both, and the queries come from the bundled review openings (`data/reviews.txt`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from ..devices import resolve_device
from ..errors import UsageError
from ..paths import DATA_DIR
from .sampling import respond_to_batch

BUNDLED_REVIEWS = DATA_DIR / "reviews.txt"
LM_NAME = "lvwerra/gpt2-imdb"
CLASSIFIER_NAME = "lvwerra/distilbert-imdb"


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
    raise UsageError(f"Unknown review source {source!r}; use 'bundled' or 'imdb'.")


def review_queries(
    texts: Sequence[str], tokenizer, min_len: int = 2, max_len: int = 8, seed: int = 0
) -> list[torch.Tensor]:
    """The first n tokens of each text, n drawn uniformly from [min_len, max_len] (seeded).

    Returns 1-D token tensors; texts shorter than n tokens give all their tokens.
    """
    if not 1 <= min_len <= max_len:
        raise UsageError(f"need 1 <= min_len <= max_len; got min_len={min_len}, max_len={max_len}.")
    rng = random.Random(seed)
    queries = []
    for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        ids = ids[: rng.randint(min_len, max_len)]
        if ids:
            queries.append(torch.tensor(ids, dtype=torch.long))
    if not queries:
        raise UsageError("No queries: every text tokenized to nothing.")
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
        raise UsageError(f"got {len(lengths)} response lengths for {len(queries)} queries.")
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
