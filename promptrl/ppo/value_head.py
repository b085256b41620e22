"""A causal language model with a scalar value head: the PPO policy.

`ValueHeadModel` wraps any `AutoModelForCausalLM` (GPT-2, BLOOM, Llama, ...). Its forward returns
`(logits [batch, seq, vocab], past_key_values, values [batch, seq])`, both in fp32. Dropout is
switched off: PPO's first update must see probability ratios of exactly 1. Tanh-GELU
activations written as chains of elementwise ops (GPT-2's `gelu_new`, BLOOM's) run as torch's
fused kernel instead: the same function, in fewer passes over the MLP's activations.

Saved layout (`save_pretrained(dir)`): the transformers model (or, with LoRA, the peft adapter)
as usual, plus `value_head.safetensors`.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import warnings
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

from ..errors import UsageError, loading
from ..paths import check_model_source

logger = logging.getLogger("promptrl")

VALUE_HEAD_FILE = "value_head.safetensors"
ADAPTER_CONFIG_FILE = "adapter_config.json"


class ValueHeadOutput(NamedTuple):
    logits: torch.Tensor
    past_key_values: object
    values: torch.Tensor


def _disable_dropout(model: nn.Module) -> None:
    """Zero every dropout: modules, float rates that layers copied from the config at init
    (BLOOM's `hidden_dropout`, Llama's `attention_dropout`), and the config itself."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        for key, value in list(vars(module).items()):
            if isinstance(value, float) and ("dropout" in key or "pdrop" in key):
                setattr(module, key, 0.0)
    config = getattr(model, "config", None)
    if config is not None:
        for key, value in list(config.to_dict().items()):
            if isinstance(value, float) and ("dropout" in key or "pdrop" in key):
                setattr(config, key, 0.0)


class TanhGELU(nn.Module):
    """GELU's tanh approximation as torch's one fused kernel, forward and backward.

    GPT-2's `gelu_new` and BLOOM's `BloomGelu` compute the same function (and BLOOM's custom
    backward its exact derivative) as chains of five to eight elementwise ops, each a pass over
    the MLP's widest activations; this is one. Outputs agree to float rounding.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate="tanh")


def _tanh_gelu_classes() -> tuple[type, ...]:
    from transformers import activations

    classes = [
        getattr(activations, name) for name in ("NewGELUActivation", "FastGELUActivation") if hasattr(activations, name)
    ]
    try:
        from transformers.models.bloom.modeling_bloom import BloomGelu

        classes.append(BloomGelu)
    except ImportError:
        pass
    return tuple(classes)


def fuse_tanh_gelus(model: nn.Module) -> int:
    """Swap every unfused tanh-GELU module of `model` for `TanhGELU`; returns how many.

    Activations hold no weights, so the checkpoint `save_pretrained` writes is unchanged.
    """
    slow = _tanh_gelu_classes()
    swapped = 0
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, slow):
                setattr(parent, name, TanhGELU())
                swapped += 1
    return swapped


def base_model(model: nn.Module) -> nn.Module:
    """The transformers model itself, under a peft wrapper if there is one."""
    return model.get_base_model() if _is_peft(model) else model


def _is_peft(model: nn.Module) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


class ValueHeadModel(nn.Module):
    """A causal LM plus `v_head = Linear(hidden, 1)` on the last hidden state.

    Args:
        pretrained_model: an `AutoModelForCausalLM` instance, or a peft model wrapping one.
        value_head: optional state dict for the value head; a fresh zero-initialised head
            otherwise (zero init: values start at 0, so early advantages are just rewards).
    """

    expected_model_type: str | None = None

    def __init__(self, pretrained_model: PreTrainedModel, value_head: dict | None = None):
        super().__init__()
        self._check_model_type(pretrained_model.config)
        self.pretrained_model = pretrained_model
        _disable_dropout(pretrained_model)
        fuse_tanh_gelus(pretrained_model)
        hidden = _hidden_size(pretrained_model.config)
        self.v_head = nn.Linear(hidden, 1)
        nn.init.zeros_(self.v_head.weight)
        nn.init.zeros_(self.v_head.bias)
        if value_head is not None:
            self.v_head.load_state_dict(value_head)
        self.v_head.float()
        self._takes_position_ids = _accepts_argument(pretrained_model, "position_ids")
        self._takes_logits_to_keep = _accepts_argument(pretrained_model, "logits_to_keep")
        self._cache_argument = cache_argument(pretrained_model)

    @classmethod
    def _check_model_type(cls, config) -> None:
        if cls.expected_model_type and config.model_type != cls.expected_model_type:
            raise UsageError(
                f"{cls.__name__} expects a '{cls.expected_model_type}' checkpoint but got model "
                f"type '{config.model_type}'; use ValueHeadModel for any causal LM."
            )

    # -- transformers-style conveniences ------------------------------------------------
    @property
    def config(self):
        return self.pretrained_model.config

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def is_peft_model(self) -> bool:
        return _is_peft(self.pretrained_model)

    @property
    def generation_config(self):
        return self.pretrained_model.generation_config

    def get_input_embeddings(self) -> nn.Module:
        return self.pretrained_model.get_input_embeddings()

    @property
    def vocab_size(self) -> int:
        return self.get_input_embeddings().num_embeddings

    @property
    def max_positions(self) -> int | None:
        """The longest sequence the model's position embeddings hold (None: no limit, e.g. ALiBi)."""
        config = self.pretrained_model.config
        for name in ("n_positions", "max_position_embeddings"):
            value = getattr(config, name, None)
            if isinstance(value, int):
                return value
        return None

    def gradient_checkpointing_enable(self, **kwargs) -> None:
        """Recompute activations in the backward pass instead of keeping them (less memory)."""
        lm = base_model(self.pretrained_model)
        # transformers 5 renamed it (the old name warns, and goes in v6); older releases lack the new one.
        enable = getattr(lm, "activation_checkpointing_enable", None) or lm.gradient_checkpointing_enable
        enable(**kwargs)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values=None,
        use_cache: bool = False,
        logits_to_keep: int = 0,
        **kwargs,
    ) -> ValueHeadOutput:
        """input_ids `[batch, seq]` -> logits `[batch, seq, vocab]`, values `[batch, seq]`.

        `logits_to_keep > 0` returns logits for the last `logits_to_keep` positions only
        (the LM head skips the rest where the model supports it); values cover every position.
        """
        if position_ids is not None and self._takes_position_ids:
            kwargs["position_ids"] = position_ids
        if logits_to_keep and self._takes_logits_to_keep:
            kwargs["logits_to_keep"] = logits_to_keep
        if past_key_values is not None:
            kwargs[self._cache_argument] = past_key_values
        out = self.pretrained_model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            use_cache=use_cache,
            output_hidden_states=True,
            return_dict=True,
            **kwargs,
        )
        last_hidden = out.hidden_states[-1]
        # The value head stays fp32 under autocast: bf16 values carry ~3 significant digits,
        # too few for returns that the value loss compares them with.
        with torch.autocast(device_type=last_hidden.device.type, enabled=False):
            values = self.v_head(last_hidden.float()).squeeze(-1)
        logits = out.logits
        if logits_to_keep and not self._takes_logits_to_keep:
            logits = logits[:, -logits_to_keep:]
        return ValueHeadOutput(logits.float(), output_cache(out), values)

    @torch.no_grad()
    def generate(self, *args, **kwargs):
        """The language model's `generate`, in eval mode: a policy training with gradient
        checkpointing would otherwise sample without its KV cache (transformers turns the
        cache off in train mode), recomputing every earlier position at each token."""
        was_training = self.training
        self.eval()
        try:
            return self.pretrained_model.generate(*args, **kwargs)
        finally:
            self.train(was_training)

    # -- persistence ---------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, peft_config=None, **kwargs) -> ValueHeadModel:
        """Load a causal LM (hub name or local dir) and its value head if one was saved.

        `peft_config` (e.g. `peft.LoraConfig`) wraps the model in fresh LoRA adapters; a
        directory saved from a LoRA model (it holds `adapter_config.json`) reloads its base
        model and adapters, trainable. Other kwargs go to `AutoModelForCausalLM.from_pretrained`.
        """
        path = Path(name_or_path)
        if path.is_dir() and (path / ADAPTER_CONFIG_FILE).exists():
            from peft import PeftModel

            base_name = json.loads((path / ADAPTER_CONFIG_FILE).read_text())["base_model_name_or_path"]
            base = cls._load_lm(base_name, **kwargs)
            lm = PeftModel.from_pretrained(base, str(path), is_trainable=True)
        else:
            lm = cls._load_lm(str(name_or_path), **kwargs)
            if peft_config is not None:
                from peft import get_peft_model

                with warnings.catch_warnings():
                    # peft reads transformers' deprecated `is_gradient_checkpointing`: its warning
                    # is about peft's code, not the caller's.
                    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
                    lm = get_peft_model(lm, peft_config)
        head = _load_value_head(name_or_path)
        if head is None:
            logger.debug("No value head in %s: starting a fresh (zero) value head.", name_or_path)
        return cls(lm, value_head=head)

    @classmethod
    def _load_lm(cls, name_or_path: str, **kwargs) -> PreTrainedModel:
        check_model_source(name_or_path)
        with loading("language model", name_or_path):
            config = kwargs.pop("config", None) or AutoConfig.from_pretrained(name_or_path)
        cls._check_model_type(config)
        # transformers 5 loads in the checkpoint's dtype by default: bigscience/bloom-560m is
        # stored in fp16, and PPO on fp16 weights (and fp16 log-probs) loses updates and ratios.
        # The policy trains in fp32; mixed precision is accelerate's job (ppo.mixed_precision).
        kwargs.setdefault("dtype", torch.float32)
        with loading("language model", name_or_path):
            return AutoModelForCausalLM.from_pretrained(name_or_path, config=config, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, value_head: bool = True, **kwargs) -> None:
        """Write the LM (or its adapter) in safetensors plus, with `value_head`,
        `value_head.safetensors` (GRPO and RLOO train none, so they leave it out)."""
        os.makedirs(save_directory, exist_ok=True)
        self.pretrained_model.save_pretrained(save_directory, safe_serialization=True, **kwargs)
        if value_head:
            state = {k: v.detach().cpu().contiguous() for k, v in self.v_head.state_dict().items()}
            save_file(state, os.path.join(save_directory, VALUE_HEAD_FILE))

    def disabled_adapter(self):
        """Context in which a LoRA model computes with its base weights: the PPO reference."""
        if self.is_peft_model:
            return self.pretrained_model.disable_adapter()
        return contextlib.nullcontext()


def cache_argument(model: nn.Module) -> str:
    """The name under which the LM's forward takes its KV cache: `cache` in the transformers
    releases that deprecate `past_key_values` (5.x), `past_key_values` before them."""
    return "cache" if _accepts_argument(model, "cache") else "past_key_values"


def output_cache(output) -> object:
    """The KV cache of a model output under the name its release gives it (None without one);
    reading the old name in transformers 5 warns."""
    name = "cache" if "cache" in getattr(output, "__dataclass_fields__", ()) else "past_key_values"
    return getattr(output, name, None)


def _load_value_head(name_or_path) -> dict | None:
    path = Path(name_or_path)
    local = path / VALUE_HEAD_FILE
    if local.exists():
        return load_file(str(local))
    if path.exists() or os.environ.get("HF_HUB_OFFLINE") == "1":
        return None
    try:
        from huggingface_hub import hf_hub_download

        return load_file(hf_hub_download(str(name_or_path), VALUE_HEAD_FILE))
    except Exception:  # a plain LM on the hub has no value head: that is the normal case
        return None


def _hidden_size(config) -> int:
    for key in ("hidden_size", "n_embd", "d_model"):
        if getattr(config, key, None):
            return int(getattr(config, key))
    raise UsageError(f"Cannot find the hidden size in config of type {type(config).__name__}.")


def _accepts_argument(model: nn.Module, name: str) -> bool:
    return name in inspect.signature(base_model(model).forward).parameters
