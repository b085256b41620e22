"""The stand-in hub's language models: `bigscience/bloom-560m`, `gpt2` and
`Qwen/Qwen2.5-0.5B-Instruct` as published (config, tokenizer files, weights with the keys the
published checkpoints use), with random weights and, for `size="small"`, shrunk sizes.
`hub.py` installs them in the hub cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..paths import DATA_DIR
from .builders import SEED, save_json

# Architecture fields of the real configs; "small" replaces the sizes only.
_BLOOM_CONFIG = {
    "apply_residual_connection_post_layernorm": False,
    "architectures": ["BloomForCausalLM"],
    "attention_dropout": 0.0,
    "attention_softmax_in_fp32": True,
    "bias_dropout_fusion": True,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 3,
    "unk_token_id": 0,
    "hidden_dropout": 0.0,
    "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-05,
    "masked_softmax_fusion": True,
    "model_type": "bloom",
    "n_inner": None,
    "offset_alibi": 100,
    "pretraining_tp": 1,
    "skip_bias_add": True,
    "skip_bias_add_qkv": False,
    "slow_but_exact": False,
    "use_cache": True,
    "n_embed": 1024,
    "n_layer": 24,
    "num_attention_heads": 16,
    "vocab_size": 250880,
}
_GPT2_CONFIG = {
    "activation_function": "gelu_new",
    "architectures": ["GPT2LMHeadModel"],
    "attn_pdrop": 0.1,
    "bos_token_id": 50256,
    "eos_token_id": 50256,
    "embd_pdrop": 0.1,
    "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-05,
    "model_type": "gpt2",
    "n_ctx": 1024,
    "n_embd": 768,
    "n_head": 12,
    "n_layer": 12,
    "n_positions": 1024,
    "resid_pdrop": 0.1,
    "summary_activation": None,
    "summary_first_dropout": 0.1,
    "summary_proj_to_labels": True,
    "summary_type": "cls_index",
    "summary_use_proj": True,
    "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
    "vocab_size": 50257,
}
_QWEN2_CONFIG = {
    "architectures": ["Qwen2ForCausalLM"],
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "hidden_act": "silu",
    "hidden_size": 896,
    "initializer_range": 0.02,
    "intermediate_size": 4864,
    "max_position_embeddings": 32768,
    "max_window_layers": 21,
    "model_type": "qwen2",
    "num_attention_heads": 14,
    "num_hidden_layers": 24,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "sliding_window": 32768,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 151936,
}
QWEN2_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
"""Qwen2.5's own special tokens, right after its regular vocabulary (151643-151645 in the real
one); the real tokenizer adds 19 more (tool calls, fill-in-the-middle, vision) that prompts never use."""
QWEN2_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (loop.first and message['role'] == 'system') %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)
"""ChatML as Qwen2.5-Instruct's template writes it, without its tool-calling branches: each turn
`<|im_start|>role\\ncontent<|im_end|>\\n`, Qwen's default system message when none is given, and
`<|im_start|>assistant\\n` as the generation prompt."""


def _bpe(special_first: list[str], special_last: list[str], vocab_size: int, split_regex: str | None = None):
    """A byte-level BPE (as BLOOM's, GPT-2's and Qwen2's) trained on the bundled prompts, with
    special tokens at the ids the real tokenizers give them: first in the vocabulary, or last.
    `split_regex`: Qwen2's pre-tokenizer (NFC, a regex split, then bytes without GPT-2's regex)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    if split_regex is not None:
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(split_regex), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(special_last),
        special_tokens=special_first,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = [
        part
        for name in ("ideas.txt", "prompts.txt")
        for line in (DATA_DIR / name).read_text(encoding="utf-8").splitlines()
        for part in line.split("\t")
    ]
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_special_tokens(special_last)
    return tok


def _save_bpe_files(root: Path, tok) -> None:
    """`tokenizer.json`, and the `vocab.json`/`merges.txt` pair GPT-2's and Qwen2's repositories also ship."""
    tok.save(str(root / "tokenizer.json"))
    model = json.loads(tok.to_str())["model"]
    save_json(root / "vocab.json", model["vocab"])
    merges = [" ".join(m) if isinstance(m, list) else m for m in model["merges"]]
    (root / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


def _lm_weights(config, dtype: torch.dtype, base_keys: bool = True) -> dict[str, torch.Tensor]:
    """Random weights of a causal LM with base-model keys (`h.0...`, no `transformer.`
    prefix and no tied LM head), as the original BLOOM and GPT-2 checkpoints store them;
    `base_keys=False`: the whole model's keys without the tied LM head (`model.layers.0...`, Qwen2's)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(config)
    state = model.base_model.state_dict() if base_keys else model.state_dict()
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    return {k: v.to(dtype).contiguous() for k, v in state.items() if not k.endswith(".attn.bias") and k not in tied}


def write_bloom(root: Path, size: str) -> None:
    from safetensors.torch import save_file
    from transformers import BloomConfig, PreTrainedTokenizerFast

    raw = dict(_BLOOM_CONFIG)
    tok = _bpe(["<unk>", "<s>", "</s>", "<pad>"], [], 1000)
    if size == "small":
        raw.update(n_embed=64, n_layer=2, num_attention_heads=4, vocab_size=tok.get_vocab_size())
    save_json(root / "config.json", raw)
    PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(root)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        (root / name).unlink(missing_ok=True)
    save_json(
        root / "special_tokens_map.json",
        {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"},
    )
    save_json(
        root / "tokenizer_config.json",
        {
            "add_prefix_space": False,
            "bos_token": "<s>",
            "eos_token": "</s>",
            "model_max_length": 1000000000000000019884624838656,
            "pad_token": "<pad>",
            "padding_side": "left",
            "tokenizer_class": "BloomTokenizerFast",
            "unk_token": "<unk>",
        },
    )
    config = BloomConfig(**{k: v for k, v in raw.items() if k != "architectures"})
    save_file(
        _lm_weights(config, torch.float16),
        str(root / "model.safetensors"),
        metadata={"format": "pt"},
    )


def write_gpt2(root: Path, size: str) -> None:
    from safetensors.torch import save_file
    from transformers import GPT2Config

    raw = dict(_GPT2_CONFIG)
    tok = _bpe([], ["<|endoftext|>"], 1000)
    eos = tok.get_vocab_size() - 1
    if size == "small":
        raw.update(
            n_embd=64,
            n_layer=2,
            n_head=4,
            n_ctx=256,
            n_positions=256,
            vocab_size=eos + 1,
            bos_token_id=eos,
            eos_token_id=eos,
        )
    save_json(root / "config.json", raw)
    save_json(
        root / "generation_config.json",
        {"bos_token_id": raw["bos_token_id"], "eos_token_id": raw["eos_token_id"]},
    )
    _save_bpe_files(root, tok)
    save_json(root / "tokenizer_config.json", {"model_max_length": raw["n_positions"]})
    config = GPT2Config(**{k: v for k, v in raw.items() if k != "architectures"})
    save_file(
        _lm_weights(config, torch.float32),
        str(root / "model.safetensors"),
        metadata={"format": "pt"},
    )


def write_qwen2(root: Path, size: str) -> None:
    """Qwen/Qwen2.5-0.5B-Instruct: bf16 weights with a tied LM head, `vocab.json`/`merges.txt`
    and `tokenizer.json`, a `Qwen2Tokenizer` config holding the chat template, `<|im_end|>` as
    EOS and `<|endoftext|>` as padding, and a generation config that stops at either."""
    from safetensors.torch import save_file
    from transformers import Qwen2Config
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    raw = dict(_QWEN2_CONFIG)
    tok = _bpe([], QWEN2_SPECIAL_TOKENS, 1000, split_regex=PRETOKENIZE_REGEX)
    endoftext, _, im_end = (tok.token_to_id(t) for t in QWEN2_SPECIAL_TOKENS)
    if size == "small":
        raw.update(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_window_layers=2,
            vocab_size=tok.get_vocab_size(),
            bos_token_id=endoftext,
            eos_token_id=im_end,
        )
    save_json(root / "config.json", raw)
    save_json(
        root / "generation_config.json",
        {
            "bos_token_id": raw["bos_token_id"],
            "pad_token_id": raw["bos_token_id"],
            "do_sample": True,
            "eos_token_id": [raw["eos_token_id"], raw["bos_token_id"]],
            "repetition_penalty": 1.1,
            "temperature": 0.7,
            "top_p": 0.8,
            "top_k": 20,
        },
    )
    _save_bpe_files(root, tok)
    added = {
        str(tok.token_to_id(t)): {
            "content": t,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for t in QWEN2_SPECIAL_TOKENS
    }
    save_json(
        root / "tokenizer_config.json",
        {
            "add_bos_token": False,
            "add_prefix_space": False,
            "added_tokens_decoder": added,
            "additional_special_tokens": QWEN2_SPECIAL_TOKENS[1:],
            "bos_token": None,
            "chat_template": QWEN2_CHAT_TEMPLATE,
            "clean_up_tokenization_spaces": False,
            "eos_token": "<|im_end|>",
            "errors": "replace",
            "model_max_length": 131072,
            "pad_token": "<|endoftext|>",
            "split_special_tokens": False,
            "tokenizer_class": "Qwen2Tokenizer",
            "unk_token": None,
        },
    )
    config = Qwen2Config(**{k: v for k, v in raw.items() if k not in ("architectures", "torch_dtype")})
    save_file(
        _lm_weights(config, torch.bfloat16, base_keys=False),
        str(root / "model.safetensors"),
        metadata={"format": "pt"},
    )
