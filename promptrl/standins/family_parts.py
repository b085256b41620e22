"""The tiny parts the stand-in families (`families.py`) are built from: weight files (sharded,
`fp16` variants), the T5 and Gemma tokenizer stand-ins, CLIP and T5 text encoders, VAEs,
schedulers and the TAESD decoders. Each is random-init and shrunk; what a pipeline reads of it
(classes, config keys, vocabulary sizes, file names) is the real repositories'.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from .builders import SEED, _policy_corpus, save_json

T5_VOCAB = 32100  # 32,000 sentencepiece pieces + 100 <extra_id_*>; the model's embedding has 32,128
GEMMA_VOCAB = 256000


PIXART_DPM_SOLVER = {
    "_class_name": "DPMSolverMultistepScheduler",
    "_diffusers_version": "0.28.0.dev0",
    "algorithm_type": "dpmsolver++",
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "beta_start": 0.0001,
    "dynamic_thresholding_ratio": 0.995,
    "euler_at_final": False,
    "lambda_min_clipped": -float("inf"),
    "lower_order_final": True,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "solver_order": 2,
    "solver_type": "midpoint",
    "steps_offset": 0,
    "thresholding": False,
    "timestep_spacing": "linspace",
    "trained_betas": None,
    "use_karras_sigmas": False,
    "use_lu_lambdas": False,
    "variance_type": None,
}
SANA_DPM_SOLVER = {  # the same solver on flow-matching sigmas (as seen in Sana_1600M_512px_diffusers)
    **PIXART_DPM_SOLVER,
    "_diffusers_version": "0.32.0.dev0",
    "final_sigmas_type": "zero",
    "flow_shift": 3.0,
    "prediction_type": "flow_prediction",
    "rescale_betas_zero_snr": False,
    "use_beta_sigmas": False,
    "use_exponential_sigmas": False,
    "use_flow_sigmas": True,
}


# --------------------------------------------------------------------------- files


def save_component(module, folder: Path, variants: Iterable[str] = ("",), shards: int = 1) -> None:
    """`save_pretrained` one component per variant ("" full precision, "fp16" half); with
    `shards > 1`, split its weights into that many files plus the index the libraries read."""
    for variant in sorted(variants, reverse=True):  # full precision last: its config.json stays
        dtype = torch.float16 if variant == "fp16" else torch.float32
        module.to(dtype).save_pretrained(folder, safe_serialization=True, variant=variant or None)
    if shards > 1:
        shard_weights(folder, shards)
    module.to(torch.float32)


def shard_weights(folder: Path, shards: int) -> None:
    """Split each weights file (`model[.fp16].safetensors`, `diffusion_pytorch_model[.fp16]...`)
    into `shards` files, named and indexed as the libraries' `save_pretrained` names them:
    `model.fp16-00001-of-00002.safetensors`, `model.safetensors.index.fp16.json`."""
    from safetensors.torch import load_file, save_file

    for single in sorted(folder.glob("*.safetensors")):
        stem = single.name[: -len(".safetensors")]  # "model" or "model.fp16"
        base, _, variant = stem.partition(".")
        state = load_file(single)
        names = list(state)
        total = sum(t.numel() * t.element_size() for t in state.values())
        weight_map, start = {}, 0
        for i in range(shards):
            end = len(names) * (i + 1) // shards
            file = f"{stem}-{i + 1:05d}-of-{shards:05d}.safetensors"
            save_file({k: state[k] for k in names[start:end]}, folder / file, metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(names[start:end], file))
            start = end
        single.unlink()
        index = f"{base}.safetensors.index{'.' + variant if variant else ''}.json"
        save_json(folder / index, {"metadata": {"total_size": total}, "weight_map": weight_map})


def rename_class(config: Path, name: str) -> None:
    """Set a saved config's `_class_name` (a repo saved by an older diffusers names an older class)."""
    data = json.loads(config.read_text())
    save_json(config, {**data, "_class_name": name})


def corpus_words() -> list[str]:
    counts: dict[str, int] = {}
    for text in _policy_corpus():
        for word in re.findall(r"[A-Za-z]+|[0-9]+|[^\sA-Za-z0-9]", text.lower()):
            counts[word] = counts.get(word, 0) + 1
    return sorted(counts, key=lambda w: (-counts[w], w))


def t5_tokenizer(folder: Path, model_max_length: int, cls: str = "T5TokenizerFast") -> int:
    """A T5 Unigram tokenizer (32,100 tokens: `<pad>` 0, `</s>` 1, `<unk>` 2, pieces, then
    `<extra_id_99..0>`) holding the corpus' words whole; returns its length."""
    from transformers import T5Tokenizer

    words = corpus_words()
    chars = sorted({c for w in words for c in w})
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(c, -10.0) for c in chars] + [("\u2581" + c, -9.0) for c in chars]
    seen = {p for p, _ in pieces}
    for rank, word in enumerate(words):
        if "\u2581" + word not in seen and len(word) > 1:
            pieces.append(("\u2581" + word, -5.0 - rank * 1e-4))
            seen.add("\u2581" + word)
    # Unused pieces up to the real vocabulary size, so ids and lengths span T5's range.
    pieces += [(f"\u2581\u2063{i}", -30.0) for i in range(T5_VOCAB - 100 - len(pieces))]
    pieces += [(f"<extra_id_{i}>", 0.0) for i in range(99, -1, -1)]
    tokenizer = T5Tokenizer(vocab=pieces, extra_ids=100, model_max_length=model_max_length, legacy=True)
    tokenizer.save_pretrained(folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["tokenizer_class"] = cls
    save_json(folder / "tokenizer_config.json", config)
    return len(tokenizer)


def gemma_tokenizer(folder: Path) -> int:
    """A Gemma byte-fallback BPE (256,000 tokens: `<pad>` 0, `<eos>` 1, `<bos>` 2, `<unk>` 3,
    `<mask>` 4, byte tokens, pieces) holding the corpus' words whole; returns its length."""
    from transformers import GemmaTokenizer

    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"])}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    merges: list[tuple[str, str]] = []
    seen_merges = set()

    def add(token: str) -> None:
        vocab.setdefault(token, len(vocab))

    for word in corpus_words():
        symbols = ["\u2581"] + list(word)
        for s in symbols:
            add(s)
        piece = symbols[0]
        for s in symbols[1:]:
            if (piece, s) not in seen_merges:
                seen_merges.add((piece, s))
                merges.append((piece, s))
            piece += s
            add(piece)
    for i in range(GEMMA_VOCAB - len(vocab)):
        vocab[f"<unused{i}>"] = len(vocab)
    tokenizer = GemmaTokenizer(
        vocab=vocab,
        merges=merges,
        add_bos_token=True,
        add_eos_token=False,
        padding_side="left",
        model_max_length=int(1e30),
    )
    tokenizer.save_pretrained(folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["tokenizer_class"] = "GemmaTokenizer"
    save_json(folder / "tokenizer_config.json", config)
    return len(tokenizer)


def clip_text(projection: bool, hidden: int = 32, projection_dim: int = 32, pad_token_id: int = 49407):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=49408,
        max_position_embeddings=77,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        projection_dim=projection_dim,
        hidden_act="gelu",
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=pad_token_id,
    )
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def t5_encoder(d_model: int = 32):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(
        T5Config(
            vocab_size=32128,
            d_model=d_model,
            d_kv=8,
            d_ff=2 * d_model,
            num_layers=1,
            num_heads=4,
            feed_forward_proj="gated-gelu",  # T5 v1.1 (the xxl encoder these pipelines use)
            relative_attention_num_buckets=32,
            is_encoder_decoder=False,
            use_cache=False,
        )
    )


def tiny_vae(latent_channels: int, **config):
    """A 4-level `AutoencoderKL` (8x downsampling, as the real ones) of width 8..16."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=latent_channels,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        norm_num_groups=8,
        **config,
    )


# --------------------------------------------------------------------------- families


def flow_scheduler(root: Path, version: str, **config) -> None:
    save_json(
        root / "scheduler" / "scheduler_config.json",
        {
            "_class_name": "FlowMatchEulerDiscreteScheduler",
            "_diffusers_version": version,
            "num_train_timesteps": 1000,
            **config,
        },
    )


def write_taesd(latent_channels: int) -> Callable[[Path], None]:
    def write(root: Path) -> None:
        from diffusers import AutoencoderTiny

        torch.manual_seed(SEED)
        AutoencoderTiny(latent_channels=latent_channels).save_pretrained(root, safe_serialization=True)

    return write
