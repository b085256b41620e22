"""Supervised warm start: teach the generator the shape of a good prompt before RL.

Each example is `template(idea) + " " + prompt + EOS`; the loss covers the prompt and EOS only,
so the model learns to answer the query, not to write queries.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .config import SFTConfig
from .errors import NotFoundError, UsageError

logger = logging.getLogger("promptrl")

BUNDLED_PROMPTS = Path(__file__).parent / "data" / "prompts.txt"


def load_corpus(path: str | Path = "bundled") -> list[tuple[str, str]]:
    """Read `idea<TAB>prompt` lines (or bare prompts, whose idea is then empty)."""
    path = BUNDLED_PROMPTS if str(path) == "bundled" else Path(path)
    if not path.exists():
        raise NotFoundError(f"SFT corpus {path} does not exist; pass a text file of prompts or idea<TAB>prompt lines.")
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        idea, _, prompt = line.partition("\t") if "\t" in line else ("", "", line)
        pairs.append((idea.strip(), prompt.strip()))
    if not pairs:
        raise UsageError(f"SFT corpus {path} holds no examples.")
    return pairs


def encode_example(tokenizer, template: str, idea: str, prompt: str, max_length: int) -> tuple[list[int], list[int]]:
    """Token ids and labels (-100 on the query part) of one example."""
    query = template.format(idea=idea) if idea else ""
    query_ids = tokenizer(query, add_special_tokens=False).input_ids if query else []
    target_ids = tokenizer(" " + prompt if query else prompt, add_special_tokens=False).input_ids
    target_ids = (target_ids + [tokenizer.eos_token_id])[: max(1, max_length - len(query_ids))]
    return query_ids + target_ids, [-100] * len(query_ids) + target_ids


def supervised_finetune(
    model,
    tokenizer,
    pairs: list[tuple[str, str]],
    config: SFTConfig,
    template: str,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Train `model` (a ValueHeadModel or causal LM) on the pairs; returns the loss per step."""
    lm = getattr(model, "pretrained_model", model)
    device = next(lm.parameters()).device
    examples = [encode_example(tokenizer, template, i, p, config.max_length) for i, p in pairs]
    params = [p for p in lm.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr)
    rng = random.Random(seed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    losses = []
    steps_per_epoch = (len(examples) + config.batch_size - 1) // config.batch_size
    bar = tqdm(total=steps_per_epoch * config.epochs, desc="sft", disable=not progress)
    lm.train()
    for _ in range(config.epochs):
        order = list(range(len(examples)))
        rng.shuffle(order)
        for start in range(0, len(order), config.batch_size):
            chunk = [examples[i] for i in order[start : start + config.batch_size]]
            width = max(len(ids) for ids, _ in chunk)
            input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            labels = torch.full((len(chunk), width), -100, dtype=torch.long)
            attention = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, (ids, labs) in enumerate(chunk):
                input_ids[row, : len(ids)] = torch.tensor(ids)
                labels[row, : len(labs)] = torch.tensor(labs)
                attention[row, : len(ids)] = 1
            out = lm(input_ids=input_ids.to(device), attention_mask=attention.to(device), labels=labels.to(device))
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad()
            losses.append(out.loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    logger.info("SFT: %d steps, loss %.3f -> %.3f", len(losses), losses[0], losses[-1])
    return losses
