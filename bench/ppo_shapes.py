"""The PPO benchmarks' model and data, with nothing but torch and transformers.

Imported by `ppo_step.py` (promptrl against plain torch) and by `ppo_worker.py`, which also
runs under trl 0.11.4's own interpreter for `trl_side_by_side.py`: keep it free of promptrl.
"""

from __future__ import annotations

import torch
from transformers import GPT2Config, GPT2LMHeadModel

VOCAB, HIDDEN, LAYERS, HEADS = 1000, 128, 2, 4
BATCH, QUERY_LEN, RESPONSE_LEN = 64, 8, 32
MIN_RESPONSE_LEN = 4
EPOCHS, MINIBATCH = 4, 16
PAD_ID = 0
CASES = ("fixed", "varied")
"""fixed: every response RESPONSE_LEN tokens; varied: MIN_RESPONSE_LEN..RESPONSE_LEN."""


def tiny_gpt2(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=VOCAB,
        n_positions=64,
        n_embd=HIDDEN,
        n_layer=LAYERS,
        n_head=HEADS,
        bos_token_id=1,
        eos_token_id=1,
        pad_token_id=PAD_ID,
        attn_pdrop=0.0,
        embd_pdrop=0.0,
        resid_pdrop=0.0,
    )
    return GPT2LMHeadModel(config)


def make_data(varied: bool, seed: int = 0):
    """`(queries, responses, scores)`: lists of 1-D token tensors and a `[BATCH]` tensor."""
    g = torch.Generator().manual_seed(seed)
    queries = [torch.randint(2, VOCAB, (QUERY_LEN,), generator=g) for _ in range(BATCH)]
    if varied:
        lengths = torch.randint(MIN_RESPONSE_LEN, RESPONSE_LEN + 1, (BATCH,), generator=g)
    else:
        lengths = torch.full((BATCH,), RESPONSE_LEN)
    responses = [torch.randint(2, VOCAB, (int(n),), generator=g) for n in lengths]
    scores = torch.randn(BATCH, generator=g)
    return queries, responses, scores
