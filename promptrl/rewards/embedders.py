"""CLIP towers as embedders for the rewards: an open_clip model (`ClipModel`) and a
transformers `CLIPModel` with its processor (`TransformersClip`, PickScore's loaders).

Both keep one instance per (model, weights, device, dtype) in a process and run one image
forward per batch however many rewards ask for its embeddings. open_clip only knows the model
configs registered in the running process; promptrl's own (the tiny stand-in's,
`promptrl-tiny-clip`) is registered here on first use.
"""

from __future__ import annotations

import json
import os
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from ..devices import resolve_device, resolve_dtype
from ..errors import NotFoundError, UsageError, loading
from ..paths import default_cache_dir

TEXT_CACHE_SIZE = 4096  # texts whose CLIP embeddings a ClipModel keeps (12 MB at ViT-L-14's 768)
TINY_CLIP_NAME = "promptrl-tiny-clip"
TINY_CLIP_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2},
}


def register_tiny_clip() -> str:
    """Make `promptrl-tiny-clip` a known open_clip model name in this process; idempotent.

    open_clip only registers configs from files, so the config is written next to the tiny
    models first. Returns the model name.
    """
    import open_clip

    if TINY_CLIP_NAME in open_clip.list_models():
        return TINY_CLIP_NAME
    config_dir = default_cache_dir() / "open_clip_configs"
    config_file = config_dir / f"{TINY_CLIP_NAME}.json"
    text = json.dumps(TINY_CLIP_CONFIG, indent=2)
    if not config_file.exists() or config_file.read_text(encoding="utf-8") != text:
        config_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=config_dir, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, config_file)
    open_clip.add_model_config(config_file)
    return TINY_CLIP_NAME


def shared_instance(cls, name: str, weights: str | None, device, dtype):
    """`cls(name, weights, device, dtype)`, built once per process for those arguments and
    kept in `cls._shared`."""
    resolved = resolve_device(device)
    key = (name, weights, str(resolved), resolve_dtype(dtype, resolved))
    if key not in cls._shared:
        cls._shared[key] = cls(name, weights, resolved, key[3])
    return cls._shared[key]


class LastBatchCache:
    """Remembers one function's result for the last image batch it saw.

    The batch is held by weak reference and recognised by identity and in-place version, so
    a new or modified tensor is always recomputed and a freed one is never kept alive.
    """

    def __init__(self):
        self._key: tuple | None = None
        self._value: torch.Tensor | None = None

    def get(self, images: torch.Tensor, compute: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """`compute(images)`, or its remembered result for this very batch."""
        if self._key is not None:
            ref, version = self._key
            if ref() is images and version == images._version:
                return self._value
        value = compute(images)
        self._key, self._value = (weakref.ref(images), images._version), value
        return value


class ClipModel:
    """An open_clip model that embeds image tensors and texts, without gradients.

    Preprocessing happens on tensors on the model's device, following the model's own
    preprocess config: resize (shorter side to the model's image size, antialiased),
    centre crop, normalise with its mean and std.
    """

    _shared: dict[tuple, ClipModel] = {}

    def __init__(
        self,
        model_name: str = "ViT-L-14",
        pretrained: str | None = "openai",
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
    ):
        import open_clip
        from open_clip.pretrained import get_pretrained_cfg

        if model_name == TINY_CLIP_NAME:
            # open_clip only knows configs registered in this process, and the tiny model's is
            # not built in: every process that names it (CLI, app, notebook) registers it here.
            register_tiny_clip()
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.model_name, self.pretrained = model_name, pretrained
        precision = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(self.dtype, "fp32")
        # OpenAI's CLIPs were trained with QuickGELU, but open_clip's "ViT-L-14" config uses
        # GELU: without this, ("ViT-L-14", "openai") runs the real weights with the wrong
        # activation (open_clip only warns) and every embedding, hence every reward, is off.
        if model_name not in open_clip.list_models():
            raise UsageError(f"open_clip has no model {model_name!r} (rewards.clip_model); e.g. ViT-L-14, ViT-B-32.")
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        if pretrained and not Path(pretrained).exists() and pretrained not in tags:
            raise UsageError(
                f"open_clip has no weights {pretrained!r} for {model_name} (rewards.clip_pretrained); "
                f"known: {', '.join(tags) or 'none'}, or a local weights file."
            )
        quick_gelu = bool(pretrained) and get_pretrained_cfg(model_name, pretrained).get("quick_gelu", False)
        with loading("open_clip weights", f"{model_name}/{pretrained}"):
            self.model = open_clip.create_model(
                model_name,
                pretrained=pretrained,
                device=self.device,
                precision=precision,
                force_quick_gelu=quick_gelu,
            ).eval()
        self.tokenizer = open_clip.get_tokenizer(model_name)
        cfg = self.model.visual.preprocess_cfg
        size = cfg["size"]
        self.image_size = (size, size) if isinstance(size, int) else tuple(size)
        self.resize_mode = cfg.get("resize_mode", "shortest")
        if self.resize_mode not in ("shortest", "squash"):
            raise UsageError(f"{model_name}: resize_mode {self.resize_mode!r} is not supported")
        self.interpolation = cfg.get("interpolation", "bicubic")
        self.mean = torch.tensor(cfg["mean"], device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg["std"], device=self.device).view(1, 3, 1, 1)
        self._last_batch = LastBatchCache()

    @classmethod
    def shared(
        cls,
        model_name: str = "ViT-L-14",
        pretrained: str | None = "openai",
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
    ) -> ClipModel:
        """One instance per (model, weights, device, dtype) in this process, so rewards that
        use the same CLIP (aesthetic and similarity on ViT-L/14) hold it in memory once."""
        return shared_instance(cls, model_name, pretrained, device, dtype)

    @property
    def embed_dim(self) -> int:
        """Size of the (image and text) embeddings."""
        dim = getattr(self.model.visual, "output_dim", None)
        if dim is None:
            dim = self.image_embeddings(torch.zeros(1, 3, *self.image_size)).shape[-1]
        return dim

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """`[batch, 3, H, W]` in [0, 1] -> normalised `[batch, 3, size, size]` on device."""
        images = images.to(self.device, torch.float32)
        h, w = images.shape[-2:]
        th, tw = self.image_size
        if self.resize_mode == "squash":
            new = (th, tw)
        else:
            scale = max(th / h, tw / w)
            new = (max(th, round(h * scale)), max(tw, round(w * scale)))
        if (h, w) != new:
            smooth = self.interpolation != "nearest"
            images = F.interpolate(
                images,
                size=new,
                mode=self.interpolation,
                align_corners=False if smooth else None,
                antialias=smooth,
            ).clamp(0, 1)
        top, left = (new[0] - th) // 2, (new[1] - tw) // 2
        images = images[..., top : top + th, left : left + tw]
        return (images - self.mean) / self.std

    @torch.no_grad()
    def image_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings `[batch, D]` (float32) of images in [0, 1].

        Called again with the very same, unmodified tensor (the aesthetic and similarity
        rewards scoring one batch), it returns the embeddings it computed for it: one ViT
        forward per batch instead of one per reward.
        """
        return self._last_batch.get(images, self._embed_images)

    def _embed_images(self, images: torch.Tensor) -> torch.Tensor:
        pixels = self.preprocess(images).to(self.dtype)
        return F.normalize(self.model.encode_image(pixels).float(), dim=-1)

    @torch.no_grad()
    def text_embeddings(self, texts: list[str]) -> torch.Tensor:
        """L2-normalised text embeddings `[batch, D]` (float32).

        Each distinct text is encoded once and remembered (the last `TEXT_CACHE_SIZE`): a
        batch holds each idea `samples_per_idea` times and the ideas come back every epoch,
        and ViT-L-14's text tower costs about a tenth of its image tower per item.
        """
        cache = self.__dict__.setdefault("_texts", {})
        new = [t for t in dict.fromkeys(texts) if t not in cache]
        if new:
            tokens = self.tokenizer(new).to(self.device)
            embeddings = F.normalize(self.model.encode_text(tokens).float(), dim=-1)
            cache.update(zip(new, embeddings))
            for old in list(cache)[: max(0, len(cache) - TEXT_CACHE_SIZE)]:
                del cache[old]
        return torch.stack([cache[t] for t in texts])


class TransformersClip:
    """A transformers `CLIPModel` and its processor, embedding image tensors and texts.

    Images go through the processor as tensors already in [0, 1] (no rescaling), batched,
    on the model's device; fp16 on a GPU. One instance per (model, processor, device, dtype).
    """

    _shared: dict[tuple, TransformersClip] = {}

    def __init__(self, model: str, processor: str | None = None, device=None, dtype=None):
        from transformers import AutoProcessor, CLIPModel

        from ..paths import check_model_source

        check_model_source(model, "PickScore model")
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.name = model
        try:
            self.model = CLIPModel.from_pretrained(model, dtype=self.dtype).to(self.device).eval()
            self.processor = AutoProcessor.from_pretrained(processor or model)
        except OSError as e:  # transformers' own message runs to several lines
            raise NotFoundError(
                f"could not load the CLIP model {model!r} / processor {processor or model!r} "
                f"({type(e).__name__}); download them or point rewards.pickscore_model and "
                "rewards.pickscore_processor at local directories"
            ) from e
        self.max_length = self.model.config.text_config.max_position_embeddings
        self._last_batch = LastBatchCache()

    @classmethod
    def shared(cls, model: str, processor: str | None = None, device=None, dtype=None) -> TransformersClip:
        """The process-wide instance for these arguments (loaded on first use)."""
        return shared_instance(cls, model, processor, device, dtype)

    @staticmethod
    def _features(out) -> torch.Tensor:
        # transformers 5 returns a model output whose pooler_output is the projected embedding
        return getattr(out, "pooler_output", out)

    @torch.no_grad()
    def image_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings `[batch, D]` (float32) of images in [0, 1]."""
        return self._last_batch.get(images, self._embed_images)

    def _embed_images(self, images: torch.Tensor) -> torch.Tensor:
        pixels = self.processor(images=images.float(), do_rescale=False, return_tensors="pt")["pixel_values"]
        out = self.model.get_image_features(pixel_values=pixels.to(self.device, self.dtype))
        return F.normalize(self._features(out).float(), dim=-1)

    @torch.no_grad()
    def text_embeddings(self, texts: list[str]) -> torch.Tensor:
        """L2-normalised text embeddings `[batch, D]` (float32); texts cut at the token limit."""
        tokens = self.processor(
            text=list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)
        out = self.model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        return F.normalize(self._features(out).float(), dim=-1)
