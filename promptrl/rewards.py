"""Image rewards: turn each rendered image into one number for PPO.

The reward protocol
-------------------
A reward is any callable::

    reward(images, prompts, ideas) -> rewards

- ``images``: ``[batch, 3, H, W]`` float tensor in [0, 1] (on the renderer's device);
- ``prompts``: the ``batch`` prompts as rendered (after truncation to the token limit);
- ``ideas``: the ``batch`` short ideas the prompts were generated from;
- returns ``batch`` finite numbers, higher is better: a tensor, array or list of shape
  ``[batch]`` or ``[batch, 1]``.

A plain function works::

    def redness(images, prompts, ideas):
        return images[:, 0].mean(dim=(1, 2)) - images[:, 1:].mean(dim=(1, 2, 3))

``call_reward`` calls user code and turns every way it can fail (an exception, a wrong
shape, NaN, a string) into a ``RewardError`` that names the reward and says what was
expected. ``WeightedSum`` mixes rewards and ``score`` returns the total with each component,
for logging. The built-in rewards are the LAION aesthetic predictor (``AestheticReward``),
CLIP image-idea similarity (``ClipSimilarityReward``), the human-preference models PickScore
(``PickScoreReward``) and HPSv2.1 (``HPSReward``), and a guard against reward hacking by
piling up modifiers (``PromptPenalty``); ``build_reward`` assembles them from config specs.
"""

from __future__ import annotations

import importlib
import math
import re
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from promptrl.embedders import TransformersClip, shared_instance
from promptrl.rendering import resolve_device, resolve_dtype
from promptrl.tiny import TINY_CLIP_NAME, register_tiny_clip

RewardFn = Callable[[torch.Tensor, list[str], list[str]], "torch.Tensor | Sequence[float]"]

# The LAION "improved aesthetic predictor" (christophschuhmann/improved-aesthetic-predictor),
# trained on L2-normalised OpenAI CLIP ViT-L/14 image embeddings; scores are roughly 1-10.
AESTHETIC_WEIGHTS = "hf://camenduru/improved-aesthetic-predictor/sac+logos+ava1-l14-linearMSE.pth"
AESTHETIC_CLIP = ("ViT-L-14", "openai")
TEXT_CACHE_SIZE = 4096  # texts whose CLIP embeddings a ClipModel keeps (12 MB at ViT-L-14's 768)


class RewardError(ValueError):
    """A reward function raised, or returned something that is not one finite number per image."""


def reward_name(fn: Callable) -> str:
    """The name a reward is logged under: a function's ``__name__``, else its class name."""
    return getattr(fn, "__name__", None) or type(fn).__name__


def _describe(value) -> str:
    if isinstance(value, torch.Tensor | np.ndarray):
        return f"a {type(value).__name__} of shape {list(value.shape)} and dtype {value.dtype}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, list | tuple):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"{type(value).__name__} {value!r}"[:80]


def _as_rewards(name: str, value, batch: int) -> torch.Tensor:
    """``value`` as a float32 CPU tensor of shape ``[batch]``, or a RewardError saying why not."""
    expected = (
        f"expected {batch} finite numbers, one per image: a tensor, array or list of shape "
        f"[{batch}] or [{batch}, 1]"
    )
    try:
        if isinstance(value, str | bytes) or value is None:
            raise TypeError
        rewards = torch.as_tensor(value.detach() if isinstance(value, torch.Tensor) else value)
        if rewards.dtype.is_complex:
            raise TypeError
    except (TypeError, ValueError, RuntimeError):
        raise RewardError(f"reward {name!r} returned {_describe(value)}; {expected}") from None
    if rewards.dim() == 2 and rewards.shape[1] == 1:
        rewards = rewards[:, 0]
    if tuple(rewards.shape) != (batch,):
        raise RewardError(f"reward {name!r} returned {_describe(value)}; {expected}")
    rewards = rewards.to("cpu", torch.float32)
    bad = (~torch.isfinite(rewards)).nonzero().flatten().tolist()
    if bad:
        raise RewardError(
            f"reward {name!r} returned {len(bad)} non-finite values (NaN or inf) at positions "
            f"{bad[:10]}; {expected}"
        )
    return rewards


def call_reward(
    name: str, fn: RewardFn, images: torch.Tensor, prompts: list[str], ideas: list[str]
) -> torch.Tensor:
    """Call reward ``fn`` and check what it returns: float32 ``[batch]`` on the CPU.

    Raises ``RewardError`` naming the reward if ``fn`` raises or returns anything other than
    one finite number per image.
    """
    try:
        value = fn(images, prompts, ideas)
    except RewardError:
        raise
    except Exception as e:
        raise RewardError(f"reward {name!r} raised {type(e).__name__}: {e}") from e
    return _as_rewards(name, value, images.shape[0])


# --------------------------------------------------------------------------- CLIP


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
        quick_gelu = bool(pretrained) and get_pretrained_cfg(model_name, pretrained).get("quick_gelu", False)
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
            raise ValueError(f"{model_name}: resize_mode {self.resize_mode!r} is not supported")
        self.interpolation = cfg.get("interpolation", "bicubic")
        self.mean = torch.tensor(cfg["mean"], device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg["std"], device=self.device).view(1, 3, 1, 1)

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
        """``[batch, 3, H, W]`` in [0, 1] -> normalised ``[batch, 3, size, size]`` on device."""
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
        """L2-normalised image embeddings ``[batch, D]`` (float32) of images in [0, 1].

        Called again with the very same, unmodified tensor (the aesthetic and similarity
        rewards scoring one batch), it returns the embeddings it computed for it: one ViT
        forward per batch instead of one per reward.
        """
        last = getattr(self, "_last", None)
        if last is not None and last[0]() is images and last[1] == images._version:
            return last[2]
        pixels = self.preprocess(images).to(self.dtype)
        embeddings = F.normalize(self.model.encode_image(pixels).float(), dim=-1)
        # A weak reference: the cache never keeps a batch of images alive.
        self._last = (weakref.ref(images), images._version, embeddings)
        return embeddings

    @torch.no_grad()
    def text_embeddings(self, texts: list[str]) -> torch.Tensor:
        """L2-normalised text embeddings ``[batch, D]`` (float32).

        Each distinct text is encoded once and remembered (the last ``TEXT_CACHE_SIZE``): a
        batch holds each idea ``samples_per_idea`` times and the ideas come back every epoch,
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


# --------------------------------------------------------------------------- rewards


class AestheticMLP(nn.Module):
    """The LAION improved aesthetic predictor head (state-dict keys ``layers.{0,2,4,6,7}``)."""

    def __init__(self, input_dim: int = 768):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(input_dim, 1024),
            nn.Dropout(0.2),
            nn.Linear(1024, 128),
            nn.Dropout(0.2),
            nn.Linear(128, 64),
            nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``[batch, D]`` normalised CLIP embeddings -> ``[batch, 1]`` scores."""
        return self.layers(embeddings)


def resolve_file(path: str) -> str:
    """A local path as is; ``hf://repo_id/filename`` downloaded (or found in the HF cache)."""
    if path.startswith("hf://"):
        from huggingface_hub import hf_hub_download

        owner, repo, filename = path[len("hf://") :].split("/", 2)
        try:
            return hf_hub_download(f"{owner}/{repo}", filename)
        except Exception as e:
            raise FileNotFoundError(
                f"could not fetch {path} from the Hugging Face Hub ({type(e).__name__}: {e}); "
                "download the file and pass its local path instead"
            ) from e
    if not Path(path).is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    return path


def load_state_dict(path: str) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` or ``.pth`` file, or an ``hf://repo/file``."""
    path = resolve_file(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


class AestheticReward:
    """LAION improved aesthetic predictor: an MLP on L2-normalised CLIP image embeddings.

    ``weights`` is a ``.pth``/``.safetensors`` state dict or ``hf://repo_id/filename``;
    the default is the real predictor, which needs CLIP ViT-L/14 (openai). The CLIP model
    defaults to that one, shared with other rewards on the same device.
    """

    def __init__(
        self,
        clip: ClipModel | None = None,
        weights: str | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
    ):
        state = load_state_dict(weights or AESTHETIC_WEIGHTS)
        if "layers.0.weight" not in state:
            raise ValueError(
                f"{weights}: not an aesthetic predictor state dict (keys layers.0.* ... "
                f"layers.7.*); found keys {sorted(state)[:6]}"
            )
        self.clip = clip if clip is not None else ClipModel.shared(*AESTHETIC_CLIP, device, dtype)
        input_dim = state["layers.0.weight"].shape[1]
        if input_dim != self.clip.embed_dim:
            raise ValueError(
                f"aesthetic weights take {input_dim}-dim embeddings but CLIP "
                f"{self.clip.model_name} gives {self.clip.embed_dim}-dim ones"
            )
        self.mlp = AestheticMLP(input_dim)
        self.mlp.load_state_dict(state)
        self.mlp.to(self.clip.device).eval()

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, prompts: list[str], ideas: list[str]) -> torch.Tensor:
        """Aesthetic score per image, ``[batch]``."""
        return self.mlp(self.clip.image_embeddings(images))[:, 0]


class ClipSimilarityReward:
    """Cosine similarity between each image and its idea (or prompt) in CLIP space.

    With ``hinge``, reward = min(similarity, hinge): once an image is on topic, being more
    on topic earns nothing, so the policy is free to chase the other rewards.
    """

    def __init__(
        self,
        clip: ClipModel | None = None,
        hinge: float | None = None,
        scale: float = 1.0,
        against: str = "idea",
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
    ):
        if against not in ("idea", "prompt"):
            raise ValueError(f"against must be 'idea' or 'prompt', got {against!r}")
        self.clip = clip if clip is not None else ClipModel.shared(*AESTHETIC_CLIP, device, dtype)
        self.hinge, self.scale, self.against = hinge, scale, against

    def __call__(self, images: torch.Tensor, prompts: list[str], ideas: list[str]) -> torch.Tensor:
        """``scale * min(cos(image, text), hinge)`` per image, ``[batch]``."""
        texts = ideas if self.against == "idea" else prompts
        sim = (self.clip.image_embeddings(images) * self.clip.text_embeddings(texts)).sum(-1)
        if self.hinge is not None:
            sim = sim.clamp(max=self.hinge)
        return self.scale * sim


# --------------------------------------------------------------------------- human preference

# PickScore (Kirstain et al. 2023): CLIP ViT-H/14 fine-tuned on Pick-a-Pic human choices; it
# uses the processor of the LAION ViT-H/14 it started from.
PICKSCORE_MODEL = "yuvalkirstain/PickScore_v1"
PICKSCORE_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
# HPSv2.1 (Wu et al. 2023): open_clip ViT-H-14 fine-tuned on HPD v2 human rankings.
HPS_MODEL = "ViT-H-14"
HPS_WEIGHTS = "hf://xswu/HPSv2/HPS_v2.1_compressed.pt"


class PickScoreReward:
    """PickScore: ``logit_scale * cos(image, text)`` in the PickScore CLIP space (about 18-23
    for real images; higher is preferred by people). The text is the idea by default: the
    judge then asks whether the image is a good picture *of what the user asked for*, which
    a generator cannot game by writing text that merely matches its own image."""

    def __init__(self, clip: TransformersClip | None = None, against: str = "idea", model: str = PICKSCORE_MODEL,
                 processor: str | None = PICKSCORE_PROCESSOR, device=None, dtype=None):
        if against not in ("idea", "prompt"):
            raise ValueError(f"against must be 'idea' or 'prompt', got {against!r}")
        self.clip = clip if clip is not None else TransformersClip.shared(model, processor, device, dtype)
        self.against = against

    def __call__(self, images: torch.Tensor, prompts: list[str], ideas: list[str]) -> torch.Tensor:
        """PickScore per image, ``[batch]``."""
        texts = ideas if self.against == "idea" else prompts
        sim = (self.clip.image_embeddings(images) * self.clip.text_embeddings(texts)).sum(-1)
        return self.clip.model.logit_scale.exp().float() * sim


class HPSReward(ClipSimilarityReward):
    """HPSv2.1: cosine similarity of image and text in an open_clip ViT-H-14 fine-tuned on
    human preference rankings (about 0.25-0.35 for real images). The checkpoint is read with
    ``torch.load(weights_only=True)`` by open_clip; the text is the idea by default (see
    ``PickScoreReward``)."""

    def __init__(self, clip: ClipModel | None = None, against: str = "idea", model: str = HPS_MODEL,
                 weights: str = HPS_WEIGHTS, device=None, dtype=None):
        super().__init__(clip if clip is not None else hps_clip(model, weights, device, dtype), against=against)


def hps_clip(model: str = HPS_MODEL, weights: str = HPS_WEIGHTS, device=None, dtype=None) -> ClipModel:
    """The shared open_clip ``model`` with an HPS checkpoint (``.pt`` of ``{"state_dict": ...}``
    or safetensors); a checkpoint that holds anything but tensors is refused, not unpickled."""
    import pickle

    path = resolve_file(weights)
    try:
        return ClipModel.shared(model, path, device, dtype)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"{weights}: holds Python objects besides tensors and will not be unpickled; "
            "pass a plain state dict (torch.save of tensors only, or safetensors)"
        ) from e


_STOPWORDS = frozenset(
    "a an the of in on at and or with by to for from into under over as is its his her their".split()
)


class PromptPenalty:
    """A non-positive reward against modifier piling, the classic reward hack.

    penalty = -(length_weight * max(0, words - max_words) / max_words
                + repetition_weight * repetition),
    where repetition is the larger of the fraction of duplicate comma-separated chunks and
    the fraction of duplicate words (stopwords aside). A short prompt without repeats scores 0.
    """

    def __init__(
        self, max_words: int = 40, length_weight: float = 1.0, repetition_weight: float = 1.0
    ):
        self.max_words, self.length_weight = max_words, length_weight
        self.repetition_weight = repetition_weight

    def penalty(self, prompt: str) -> float:
        """The (non-positive) reward of one prompt."""
        words = re.findall(r"[\w']+", prompt.lower())
        chunks = [c.strip() for c in prompt.lower().split(",") if c.strip()]
        content = [w for w in words if w not in _STOPWORDS]
        repetition = max(
            1 - len(set(chunks)) / len(chunks) if chunks else 0.0,
            1 - len(set(content)) / len(content) if content else 0.0,
        )
        too_long = max(0, len(words) - self.max_words) / self.max_words
        return -(self.length_weight * too_long + self.repetition_weight * repetition)

    def __call__(self, images: torch.Tensor, prompts: list[str], ideas: list[str]) -> torch.Tensor:
        """Penalty per prompt, ``[batch]``."""
        return torch.tensor([self.penalty(p) for p in prompts], dtype=torch.float32)


class WeightedSum:
    """A weighted mix of named rewards: ``terms = {name: (weight, reward)}``.

    Called, it returns the total; ``score`` also returns each term, unweighted.
    """

    def __init__(self, terms: dict[str, tuple[float, RewardFn]]):
        if not terms:
            raise ValueError("WeightedSum needs at least one term")
        for name, term in terms.items():
            if not (isinstance(term, tuple) and len(term) == 2 and callable(term[1])):
                raise TypeError(f"term {name!r} must be (weight, reward_fn), got {term!r}")
        self.terms = dict(terms)

    def __call__(self, images: torch.Tensor, prompts: list[str], ideas: list[str]) -> torch.Tensor:
        """The weighted total, ``[batch]``."""
        return score(self, images, prompts, ideas)[0]


def score(
    reward: RewardFn, images: torch.Tensor, prompts: list[str], ideas: list[str]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total reward ``[batch]`` and each component ``[batch]`` (unweighted), on the CPU.

    A ``WeightedSum`` contributes one component per term; any other reward one component
    named after it. Every call goes through ``call_reward``.
    """
    batch = images.shape[0]
    if len(prompts) != batch or len(ideas) != batch:
        raise ValueError(
            f"got {batch} images, {len(prompts)} prompts and {len(ideas)} ideas; "
            "pass one prompt and one idea per image"
        )
    if not isinstance(reward, WeightedSum):
        name = reward_name(reward)
        total = call_reward(name, reward, images, prompts, ideas)
        return total, {name: total}
    components = {
        name: call_reward(name, fn, images, prompts, ideas)
        for name, (_, fn) in reward.terms.items()
    }
    total = sum(weight * components[name] for name, (weight, _) in reward.terms.items())
    return total, components


# --------------------------------------------------------------------------- baseline


class PerIdeaBaseline:
    """Running mean and std of the reward per idea, to normalise rewards across ideas.

    Some ideas make prettier images than others whatever the prompt; normalising per idea
    rewards a prompt for beating its idea's usual score. The statistics average all
    rewards seen while fewer than ``1 / (1 - momentum)`` have been seen, then decay
    exponentially, so they follow the improving policy.
    """

    def __init__(self, momentum: float = 0.9, min_count: int = 2, eps: float = 1e-6):
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum, self.min_count, self.eps = momentum, min_count, eps
        self.stats: dict[str, list[float]] = {}  # idea -> [count, mean, var]

    def normalize(self, ideas: list[str], rewards: torch.Tensor) -> torch.Tensor:
        """``(r - mean_idea) / (std_idea + eps)`` per sample ``[batch]``, using statistics
        from before this batch, then updates them. Ideas seen fewer than ``min_count`` times
        use the batch's mean and std instead."""
        rewards = torch.as_tensor(rewards, dtype=torch.float32).flatten()
        if len(ideas) != rewards.shape[0]:
            raise ValueError(f"got {len(ideas)} ideas for {rewards.shape[0]} rewards")
        batch_mean, batch_std = rewards.mean().item(), rewards.std(unbiased=False).item()
        mean, std = [], []
        for idea in ideas:
            count, m, var = self.stats.get(idea, (0, 0.0, 0.0))
            seen = count >= self.min_count
            mean.append(m if seen else batch_mean)
            std.append(math.sqrt(var) if seen else batch_std)
        out = (rewards - torch.tensor(mean)) / (torch.tensor(std) + self.eps)
        for idea, r in zip(ideas, rewards.tolist()):
            self._update(idea, r)
        return out

    def _update(self, idea: str, r: float) -> None:
        count, mean, var = self.stats.get(idea, (0, 0.0, 0.0))
        count += 1
        alpha = max(1 / count, 1 - self.momentum)  # exact average first, then exponential
        delta = r - mean
        mean += alpha * delta
        var = (1 - alpha) * (var + alpha * delta * delta)
        self.stats[idea] = [count, mean, var]

    def state_dict(self) -> dict:
        """Settings and statistics, for checkpoints."""
        return {
            "momentum": self.momentum,
            "min_count": self.min_count,
            "eps": self.eps,
            "stats": {idea: list(s) for idea, s in self.stats.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned."""
        self.momentum, self.min_count, self.eps = (
            state["momentum"],
            state["min_count"],
            state["eps"],
        )
        self.stats = {idea: list(s) for idea, s in state["stats"].items()}


# --------------------------------------------------------------------------- from config

_SPEC_KEYS = {
    "aesthetic": {"weights"},
    "similarity": {"hinge", "scale", "against"},
    "penalty": {"max_words", "length_weight", "repetition_weight"},
    "pickscore": {"model", "processor", "against"},
    "hps": {"model", "weights", "against"},
    "callable": {"target"},
}


def import_target(target: str) -> Callable:
    """``"package.module:attribute"`` -> the attribute."""
    module, sep, attr = target.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"callable target must look like 'module:function', got {target!r}")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{target} is not callable")
    return obj


def weighted_terms(terms: list[dict], weights: dict[str, float]) -> list[dict]:
    """Reward specs with `weights[type]` for the built-in types (a type the specs lack is
    added with its defaults); a zero weight drops the term; other terms keep their weight."""
    out, seen = [], set()
    for spec in terms:
        spec, kind = dict(spec), spec.get("type")
        if kind in weights:
            seen.add(kind)
            spec["weight"] = weights[kind]
        if spec.get("weight", 1.0) != 0:
            out.append(spec)
    out += [{"type": kind, "weight": w} for kind, w in weights.items() if kind not in seen and w != 0]
    if not out:
        raise ValueError("Every reward weight is zero: give at least one reward a non-zero weight.")
    return out


def build_reward(
    specs: list[dict],
    device: str | torch.device | None = None,
    clip_model_name: str = AESTHETIC_CLIP[0],
    clip_pretrained: str | None = AESTHETIC_CLIP[1],
    aesthetic_weights: str | None = None,
    dtype: str | torch.dtype | None = None,
    pickscore_model: str = PICKSCORE_MODEL,
    pickscore_processor: str | None = PICKSCORE_PROCESSOR,
    hps_model: str = HPS_MODEL,
    hps_weights: str = HPS_WEIGHTS,
) -> WeightedSum:
    """A ``WeightedSum`` from config specs, e.g.::

        [{"type": "aesthetic", "weight": 1.0},
         {"type": "similarity", "weight": 0.5, "hinge": 0.3},
         {"type": "penalty", "weight": 1.0, "max_words": 30},
         {"type": "callable", "name": "mine", "target": "my_module:my_fn", "weight": 1.0}]

    Each term is named by its ``name`` (default: its type); ``weight`` defaults to 1. The
    CLIP-based terms share one CLIP model (``clip_model_name``/``clip_pretrained``). The
    preference models ``pickscore`` and ``hps`` take ``model``/``processor``/``weights``
    from their spec, else from the ``pickscore_*``/``hps_*`` arguments.
    """
    terms: dict[str, tuple[float, RewardFn]] = {}
    for spec in specs:
        spec = dict(spec)
        kind = spec.pop("type", None)
        if kind not in _SPEC_KEYS:
            raise ValueError(f"unknown reward type {kind!r}; known types: {sorted(_SPEC_KEYS)}")
        name = spec.pop("name", kind)
        weight = float(spec.pop("weight", 1.0))
        unknown = set(spec) - _SPEC_KEYS[kind]
        if unknown:
            raise ValueError(
                f"reward {name!r} ({kind}): unknown keys {sorted(unknown)}; "
                f"known: {sorted(_SPEC_KEYS[kind] | {'name', 'weight'})}"
            )
        if name in terms:
            raise ValueError(f"two rewards are named {name!r}; give them distinct names")
        clip = (
            ClipModel.shared(clip_model_name, clip_pretrained, device, dtype)
            if kind in ("aesthetic", "similarity")
            else None
        )
        if kind == "aesthetic":
            fn = AestheticReward(clip, spec.get("weights", aesthetic_weights))
        elif kind == "similarity":
            fn = ClipSimilarityReward(clip, **spec)
        elif kind == "penalty":
            fn = PromptPenalty(**spec)
        elif kind == "pickscore":
            fn = PickScoreReward(
                TransformersClip.shared(spec.pop("model", pickscore_model),
                                        spec.pop("processor", pickscore_processor), device, dtype),
                **spec,
            )
        elif kind == "hps":
            clip = hps_clip(spec.pop("model", hps_model), spec.pop("weights", hps_weights), device, dtype)
            fn = HPSReward(clip, **spec)
        else:
            if "target" not in spec:
                raise ValueError(f"reward {name!r} (callable) needs a 'target': 'module:function'")
            fn = import_target(spec["target"])
        terms[name] = (weight, fn)
    return WeightedSum(terms)


def build_config_reward(specs: list[dict], rewards_config, device=None) -> WeightedSum:
    """``build_reward(specs)`` with every model and weights default from a ``RewardsConfig``."""
    r = rewards_config
    return build_reward(
        specs, device=device, clip_model_name=r.clip_model, clip_pretrained=r.clip_pretrained,
        aesthetic_weights=r.aesthetic_weights, pickscore_model=r.pickscore_model,
        pickscore_processor=r.pickscore_processor, hps_model=r.hps_model, hps_weights=r.hps_weights,
    )
