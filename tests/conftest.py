"""Shared tiny models for the tests: a byte-level tokenizer and random-init GPT-2 / BLOOM dirs.

Everything is built locally (no hub) and written with `save_pretrained`, so tests load models
exactly as users do: `from_pretrained(local_dir)`.
"""

from __future__ import annotations

import os
import socket

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY_VOCAB = 258
"""256 byte tokens, then `<|endoftext|>` (bos = eos = 256) and `<pad>` (257)."""
EOS_ID = 256
PAD_ID = 257


def assert_same_state(a, b, where="state") -> None:
    """`a` and `b` (nested dicts, lists and tensors: a state dict) hold exactly the same values."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same_state(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def byte_tokenizer():
    """A GPT-2 style byte-level tokenizer with no merges: 258 tokens, pad distinct from eos."""
    from tokenizers import pre_tokenizers
    from transformers import GPT2Tokenizer

    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    vocab["<|endoftext|>"] = EOS_ID
    vocab["<pad>"] = PAD_ID
    return GPT2Tokenizer(vocab=vocab, merges=[], pad_token="<pad>")


def tiny_config(arch: str, vocab_size: int = TINY_VOCAB, hidden: int = 32, layers: int = 2, heads: int = 2):
    """A small GPT-2 or BLOOM config; dropout stays at the library default (the model must disable it)."""
    from transformers import BloomConfig, GPT2Config

    ids = dict(
        bos_token_id=min(EOS_ID, vocab_size - 2),
        eos_token_id=min(EOS_ID, vocab_size - 2),
        pad_token_id=min(PAD_ID, vocab_size - 1),
    )
    if arch == "gpt2":
        return GPT2Config(vocab_size=vocab_size, n_positions=256, n_embd=hidden, n_layer=layers, n_head=heads, **ids)
    if arch == "bloom":
        return BloomConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            n_layer=layers,
            n_head=heads,
            hidden_dropout=0.1,
            attention_dropout=0.1,
            **ids,
        )
    raise ValueError(f"unknown arch {arch!r}")


def write_tiny_lm(
    path: str | os.PathLike, arch: str, seed: int = 0, with_tokenizer: bool = True, **config_kwargs
) -> str:
    """Random-init a tiny causal LM and `save_pretrained` it (and the tokenizer) to `path`."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(arch, **config_kwargs))
    model.save_pretrained(path)
    if with_tokenizer:
        byte_tokenizer().save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def gpt2_dir(tmp_path_factory) -> str:
    """A plain (no value head) tiny GPT-2 directory with its tokenizer."""
    return write_tiny_lm(tmp_path_factory.mktemp("tiny-gpt2"), "gpt2")


@pytest.fixture(scope="session")
def bloom_dir(tmp_path_factory) -> str:
    """A plain (no value head) tiny BLOOM directory with its tokenizer."""
    return write_tiny_lm(tmp_path_factory.mktemp("tiny-bloom"), "bloom")


@pytest.fixture(params=["gpt2", "bloom"])
def lm_dir(request) -> str:
    """Each tiny architecture in turn."""
    return request.getfixturevalue(f"{request.param}_dir")


@pytest.fixture(scope="session")
def make_tiny_lm():
    """`make_tiny_lm(path, arch, seed=0, with_tokenizer=True, **config_kwargs) -> path`."""
    return write_tiny_lm


@pytest.fixture(scope="session")
def lora_config():
    """`lora_config(arch)`: a small peft LoraConfig on the tiny model's fused attention projection."""

    def make(arch: str):
        from peft import LoraConfig

        targets = {"gpt2": ["c_attn"], "bloom": ["query_key_value"]}[arch]
        return LoraConfig(r=4, lora_alpha=8, target_modules=targets, task_type="CAUSAL_LM")

    return make


@pytest.fixture
def one_thread():
    """Run a test on one torch thread: on a busy 2-core machine, two threads can be 10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session", autouse=True)
def tiny_cache(tmp_path_factory):
    """Tiny stand-in models (tiny.py) are built once per session into its temp dir."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROMPTRL_CACHE", str(tmp_path_factory.getbasetemp() / "promptrl-cache"))
        yield


@pytest.fixture(scope="session")
def free_port():
    """`free_port() -> int`: a loopback port nothing listens on right now."""

    def pick() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    return pick


@pytest.fixture(scope="session")
def standin_hub(tmp_path_factory):
    """`HF_HOME` of an offline stand-in for the Hugging Face Hub (promptrl/standins/hub.py): the
    repos the real presets name, with shrunk configs and real file formats. Built once per
    session; its real-size ViT-L-14 weights are cached across sessions (see
    `paths.default_weights_cache`)."""
    from promptrl.standins.hub import build_standin_hub

    return build_standin_hub(tmp_path_factory.getbasetemp() / "standin-hub")


# The app's Train tab in tests: a small run the tiny preset finishes in seconds.
TRAIN_OVERRIDES = "\n".join(
    [
        "ppo.batch_size=4",
        "ppo.mini_batch_size=2",
        "ppo.forward_batch_size=4",
        "samples_per_idea=2",
        "sft.enabled=false",
        "trackers=[]",
        "generation.max_new_tokens=8",
        "save_every=1",
        "image_every=1",
        "eval_ideas=2",
    ]
)
