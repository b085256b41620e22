"""The builders of the tiny stand-ins, each writing one small, deterministic model (random
init, fixed seeds) to a local directory that loads with the same `from_pretrained` / open_clip
calls as the real model.

- `build_tiny_policy`: a 2-layer `BloomForCausalLM` with a byte-level BPE tokenizer
  trained on the bundled ideas and prompts.
- `build_tiny_pipeline`: a `StableDiffusionPipeline` (64x64 images) whose tokenizer is
  the real CLIP BPE, so prompts hit the same 77-token limit as real Stable Diffusion.
- `build_tiny_clip`: an open_clip model registered as `promptrl-tiny-clip` and a LAION-style
  aesthetic MLP sized for its embeddings and calibrated to score images 5 +- 1.
- `build_tiny_pickscore`: a transformers `CLIPModel` and `CLIPProcessor` (PickScore's
  loaders); `build_tiny_hps`: a `promptrl-tiny-clip` checkpoint in HPSv2's `.pt` format.

Every builder is idempotent (a finished directory is reused) and atomic (it builds in a
temporary directory and renames it into place, so a crashed or concurrent build never
leaves a half-written model behind). `tiny.py` builds them all and names them.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch

from ..paths import DATA_DIR, build_atomically, default_cache_dir
from ..rewards.clip import AestheticMLP
from ..rewards.embedders import TINY_CLIP_CONFIG, register_tiny_clip

POLICY_VOCAB_SIZE = 2000
POLICY_SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]
CROSS_ATTENTION_VALUE_SCALE = 8.0
SEED = 0


# --------------------------------------------------------------------------- policy


def _policy_corpus() -> Iterator[str]:
    """Lines of the bundled ideas and (idea, prompt) pairs, one text per item."""
    for name in ("ideas.txt", "prompts.txt"):
        file = DATA_DIR / name
        if not file.exists():
            continue
        for line in file.read_text(encoding="utf-8").splitlines():
            yield from (part.strip() for part in line.split("\t") if part.strip())


def train_policy_tokenizer(texts: Iterator[str], vocab_size: int = POLICY_VOCAB_SIZE):
    """Byte-level BPE (as in Bloom and GPT-2) trained on `texts`, as a fast HF tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=POLICY_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    # Left padding, like bigscience/bloom-560m's tokenizer: batched generation appends on the right.
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        padding_side="left",
    )


def build_tiny_policy(path: str | Path | None = None) -> str:
    """A tiny `BloomForCausalLM` (hidden 64, 2 layers, 4 heads) and its tokenizer.

    The tokenizer is a ~2,000-token byte-level BPE trained on `promptrl/data`; pad, bos and
    eos are distinct tokens and the model config's ids match them. Returns the directory.
    """
    from transformers import BloomConfig, BloomForCausalLM

    path = Path(path) if path is not None else default_cache_dir() / "policy"

    def build(tmp: Path) -> None:
        tokenizer = train_policy_tokenizer(_policy_corpus())
        torch.manual_seed(SEED)
        config = BloomConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            n_layer=2,
            n_head=4,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        model = BloomForCausalLM(config)
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    return str(build_atomically(path, "config.json", build))


# --------------------------------------------------------------------------- pipeline


def write_clip_bpe_files(directory: str | Path) -> None:
    """`vocab.json` and `merges.txt` of the real 49,408-token CLIP BPE, from open_clip's copy."""
    import open_clip
    from open_clip.tokenizer import bytes_to_unicode

    bpe = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    lines = gzip.open(bpe).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]  # the slice open_clip's SimpleTokenizer uses
    byte_symbols = list(bytes_to_unicode().values())
    vocab = byte_symbols + [s + "</w>" for s in byte_symbols]
    vocab += ["".join(m.split()) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    (Path(directory) / "vocab.json").write_text(
        json.dumps({token: i for i, token in enumerate(vocab)}), encoding="utf-8"
    )
    (Path(directory) / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


def write_clip_tokenizer(folder: Path, pad_token: str) -> None:
    """The real CLIP BPE files, as SD-family repos ship them (slow-tokenizer files)."""
    folder.mkdir(parents=True)
    write_clip_bpe_files(folder)
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": pad_token,
        "unk_token": "<|endoftext|>",
    }
    save_json(folder / "special_tokens_map.json", special)
    save_json(
        folder / "tokenizer_config.json",
        {
            "add_prefix_space": False,
            "do_lower_case": True,
            "errors": "replace",
            "model_max_length": 77,
            "tokenizer_class": "CLIPTokenizer",
            **special,
        },
    )


def save_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def clip_bpe_tokenizer(model_max_length: int = 77):
    """The real 49,408-token CLIP tokenizer (transformers), built from open_clip's bundled BPE.

    Its ids match `open_clip.tokenize` and Stable Diffusion's tokenizer, without a download.
    """
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        write_clip_bpe_files(tmp)
        return CLIPTokenizer.from_pretrained(tmp, model_max_length=model_max_length)


def build_tiny_pipeline(path: str | Path | None = None) -> str:
    """A tiny `StableDiffusionPipeline` rendering 64x64 images, saved to `path`.

    UNet with block_out_channels (32, 64) and cross_attention_dim 32, a two-block VAE, a
    5-layer CLIP text encoder and an SD-Turbo-style Euler scheduler (trailing timesteps, so
    one step works). Returns the directory.

    A random UNet predicting noise leaves the image almost all noise, whatever the prompt.
    So the tiny UNet predicts the clean sample instead, and its cross-attention value
    projections are scaled up: two prompts with one seed then differ about half as much as
    two seeds with one prompt, enough for RL to change images by changing prompts.
    """
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    path = Path(path) if path is not None else default_cache_dir() / "pipeline"

    def build(tmp: Path) -> None:
        torch.manual_seed(SEED)
        unet = UNet2DConditionModel(
            block_out_channels=(32, 64),
            layers_per_block=1,
            sample_size=32,
            in_channels=4,
            out_channels=4,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=8,
            norm_num_groups=16,
        )
        with torch.no_grad():
            for name, module in unet.named_modules():
                if name.endswith("attn2"):  # cross-attention: the only way text reaches the image
                    module.to_v.weight.mul_(CROSS_ATTENTION_VALUE_SCALE)
        vae = AutoencoderKL(
            block_out_channels=(32, 64),
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            latent_channels=4,
            norm_num_groups=16,
            sample_size=64,
        )
        tokenizer = clip_bpe_tokenizer()
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=5,
                num_attention_heads=4,
                max_position_embeddings=77,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
        scheduler = EulerDiscreteScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            timestep_spacing="trailing",
            steps_offset=1,
            prediction_type="sample",
        )
        pipe = StableDiffusionPipeline(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        pipe.save_pretrained(tmp, safe_serialization=True)

    return str(build_atomically(path, "model_index.json", build))


# --------------------------------------------------------------------------- CLIP


def calibrate_aesthetic_mlp(mlp: torch.nn.Module, embeddings: torch.Tensor) -> None:
    """Make a random aesthetic MLP score `embeddings` with mean 5 and std 1, in place.

    Random CLIP towers map all images close to one direction (cosine ~0.99), so a random
    MLP would give every image the same score. The predictor has no activations (it is
    affine), so centring its input on the embeddings' mean and rescaling its output gives
    scores spread like the real predictor's, and rewards the tiny preset can learn from.
    """
    first, last = mlp.layers[0], mlp.layers[-1]
    with torch.no_grad():
        mean, spread = embeddings.mean(0), (embeddings - embeddings.mean(0)).std()
        first.weight.div_(spread)
        first.bias.sub_(first.weight @ mean)
        scores = mlp.eval()(embeddings)[:, 0]
        last.weight.div_(scores.std())
        last.bias.sub_(scores.mean()).div_(scores.std()).add_(5.0)


def build_tiny_clip(path: str | Path | None = None) -> dict[str, str]:
    """A tiny random open_clip model and a matching aesthetic MLP, saved under `path`.

    The MLP is calibrated to score smooth random images 5 +- 1 (see
    `calibrate_aesthetic_mlp`). Returns `{"model_name", "pretrained",
    "aesthetic_weights"}`: pass the first two to `ClipModel`, the last to
    `AestheticReward`.
    """
    import open_clip
    from safetensors.torch import save_file

    path = Path(path) if path is not None else default_cache_dir() / "clip"
    name = register_tiny_clip()

    def build(tmp: Path) -> None:
        torch.manual_seed(SEED)
        model = open_clip.create_model(name, pretrained=None).eval()
        save_file(model.state_dict(), tmp / "open_clip_model.safetensors")

        cfg = model.visual.preprocess_cfg
        size = TINY_CLIP_CONFIG["vision_cfg"]["image_size"]
        images = torch.nn.functional.interpolate(
            torch.rand(256, 3, 4, 4), size=size, mode="bilinear", align_corners=False
        )
        images = (images - torch.tensor(cfg["mean"])[:, None, None]) / torch.tensor(cfg["std"])[:, None, None]
        with torch.no_grad():
            embeddings = torch.nn.functional.normalize(model.encode_image(images), dim=-1)
        mlp = AestheticMLP(TINY_CLIP_CONFIG["embed_dim"])
        calibrate_aesthetic_mlp(mlp, embeddings)
        save_file(mlp.state_dict(), tmp / "aesthetic_mlp.safetensors")

    out = build_atomically(path, "aesthetic_mlp.safetensors", build)
    return {
        "model_name": name,
        "pretrained": str(out / "open_clip_model.safetensors"),
        "aesthetic_weights": str(out / "aesthetic_mlp.safetensors"),
    }


# --------------------------------------------------------------------------- preference models


def build_tiny_pickscore(path: str | Path | None = None) -> str:
    """A tiny transformers `CLIPModel` (32x32 images, 64-dim embeddings) with a
    `CLIPProcessor` (the real CLIP BPE), loadable as PickScore is. Returns the directory."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    path = Path(path) if path is not None else default_cache_dir() / "pickscore"

    def build(tmp: Path) -> None:
        torch.manual_seed(SEED + 1)
        tokenizer = clip_bpe_tokenizer()
        config = CLIPConfig(
            text_config={
                "vocab_size": len(tokenizer),
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "max_position_embeddings": 77,
                "bos_token_id": tokenizer.bos_token_id,
                "eos_token_id": tokenizer.eos_token_id,
                "pad_token_id": tokenizer.pad_token_id,
            },
            vision_config={
                "image_size": 32,
                "patch_size": 8,
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
            },
            projection_dim=64,
        )
        CLIPModel(config).save_pretrained(tmp, safe_serialization=True)
        image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
        CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(tmp)

    return str(build_atomically(path, "config.json", build))


def build_tiny_hps(path: str | Path | None = None) -> str:
    """Random `promptrl-tiny-clip` weights saved as HPSv2 ships them: a `.pt` file holding
    `{"state_dict": ...}` of plain tensors. Returns the file."""
    import open_clip

    path = Path(path) if path is not None else default_cache_dir() / "hps"
    name = register_tiny_clip()

    def build(tmp: Path) -> None:
        torch.manual_seed(SEED + 2)
        model = open_clip.create_model(name, pretrained=None)
        torch.save({"state_dict": model.state_dict()}, tmp / "hps_tiny.pt")

    return str(build_atomically(path, "hps_tiny.pt", build) / "hps_tiny.pt")
