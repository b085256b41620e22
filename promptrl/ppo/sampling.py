"""Rollouts: the policy turns ideas (or any queries) into sampled responses.

`PromptGenerator` is the image loop's first stage: ideas -> query template (for an instruct
model, `chat=True`: inside its chat template) -> batched sampling (left padding, KV cache) ->
prompts. `respond_to_batch` is the trl 0.1-compatible API: exactly `txt_len` sampled tokens per
query.

Log-probabilities in PPO assume sampling from the full softmax at the configured temperature:
top-k / top-p truncation makes the sampled tokens' KL estimate biased (it can turn negative),
so the defaults keep both off. Then `generator(ideas, record=True)` can also record what
PPO's no-grad pass over the policy would compute (each token's log-prob, entropy and value) as
it samples, and the PPO step skips that pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import GenerationConfig

from .. import checks
from ..errors import UsageError
from .batch import PolicyRecord
from .core import entropy_from_logprobs
from .value_head import base_model, cache_argument, output_cache

DEFAULT_SYSTEM_PROMPT = (
    "You write one Stable Diffusion prompt for the idea you are given: "
    "a single line of comma-separated descriptive phrases."
)


@dataclass
class PromptGenerationConfig:
    template: str = "{idea}"
    """Query template; `{idea}` is replaced by the idea text."""
    max_new_tokens: int = 40
    """Most tokens sampled per prompt."""
    temperature: float = 1.0
    """Sampling temperature (PPO computes log-probs at the same temperature)."""
    top_p: float = 1.0
    """Nucleus sampling threshold (1.0: off; < 1 biases the KL estimate)."""
    top_k: int = 0
    """Top-k sampling (0: off; > 0 biases the KL estimate)."""
    stop_at_newline: bool = True
    """End a prompt at the first token containing a newline (as well as at EOS)."""
    chat: bool = False
    """For instruct models: the templated idea is the user's message in the tokenizer's chat
    template, after `system_prompt`, and a prompt also ends at the template's end-of-turn token."""
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    """The system message of a chat query ('': none, so the chat template's default if it has one)."""

    def __post_init__(self):
        checks.check_types(self, "generation")
        checks.at_least("generation", "top_k", self.top_k, 0)
        if "{idea}" not in self.template:
            raise UsageError(f"template must contain '{{idea}}'; got {self.template!r}.")
        if self.max_new_tokens < 1:
            raise UsageError(f"max_new_tokens must be at least 1; got {self.max_new_tokens}.")
        if self.temperature <= 0:
            raise UsageError(f"temperature must be positive; got {self.temperature}.")
        if not 0 < self.top_p <= 1:
            raise UsageError(f"top_p must be in (0, 1]; got {self.top_p}.")
        if "{idea}" in self.system_prompt:
            raise UsageError(
                "config key 'generation.system_prompt' contains '{idea}', which is not filled in there: "
                "the idea goes into generation.template (the user's message)."
            )


@dataclass
class Rollout:
    """One batch of generated prompts."""

    ideas: list[str]
    queries: list[torch.Tensor]
    """1-D query token ids (the templated idea, in the chat template with `chat`), one per sample."""
    responses: list[torch.Tensor]
    """1-D sampled token ids, up to and including the stop token."""
    prompts: list[str]
    """Decoded responses: stripped, cut at the first newline."""
    stats: dict = field(default_factory=dict)
    recorded: PolicyRecord | None = None
    """With `record=True`: the policy's log-prob, entropy and value at each response token."""


def newline_token_ids(tokenizer) -> list[int]:
    """Ids of every vocabulary token whose text contains a newline."""
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    ids = [i for i, tok in enumerate(tokens) if tok and ("\n" in tok or "Ċ" in tok)]
    return ids


_REPLY = "PROMPTRL_REPLY"
"""A stand-in assistant message, to see what the chat template writes after one."""


def end_of_turn_ids(tokenizer) -> list[int]:
    """The token a chat template ends an assistant turn with (Qwen's and ChatML's `<|im_end|>`,
    Llama 3's `<|eot_id|>`, Gemma's `<end_of_turn>`, Mistral's EOS): the first token the template
    writes after an assistant message's text, when it is a special token. [] when the template
    writes plain text there (EOS alone then ends a turn)."""
    messages = [{"role": "user", "content": "idea"}, {"role": "assistant", "content": _REPLY}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    after = text[text.rindex(_REPLY) + len(_REPLY) :] if _REPLY in text else ""
    ids = tokenizer(after, add_special_tokens=False).input_ids[:1]
    special = {i for i, token in tokenizer.added_tokens_decoder.items() if token.special}
    return [i for i in ids if i in special or i in tokenizer.all_special_ids]


class PromptGenerator:
    """Expands ideas into prompts with a (value-head) causal LM.

    With `config.chat`, a query is the tokenizer's chat template around the system prompt and
    the templated idea (the template adds any BOS it wants, so the tokenizer adds none), and a
    prompt ends at EOS or at the template's end-of-turn token (`end_of_turn_ids`).

    Args:
        model: a `ValueHeadModel` (or any model with `generate`).
        tokenizer: its tokenizer; padding is set to the left for batched generation.
        config: `PromptGenerationConfig`.
    """

    def __init__(self, model, tokenizer, config: PromptGenerationConfig | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.config = config or PromptGenerationConfig()
        if self.config.chat and not getattr(tokenizer, "chat_template", None):
            raise UsageError(
                "config key 'generation.chat' is true, but the policy's tokenizer has no chat template: "
                "set generation.chat=false for a base model, or use an instruct model's tokenizer."
            )
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.stop_ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        if self.config.chat:
            self.stop_ids += [i for i in end_of_turn_ids(tokenizer) if i not in self.stop_ids]
        if self.config.stop_at_newline:
            self.stop_ids += newline_token_ids(tokenizer)
        if not self.stop_ids:
            raise UsageError("The tokenizer has no EOS token and stop_at_newline is off: nothing can end a prompt.")

    def generation_config(self, **overrides) -> GenerationConfig:
        """What `generate` samples with. `generate` fills every setting left unset from the
        model's `generation_config.json` (Qwen2.5-Instruct's asks for repetition_penalty 1.1,
        top_k 20, top_p 0.8), but the log-probs PPO uses are the plain softmax's at the
        temperature: so the sampling settings are all given, and the reshaping ones this config
        has no key for (repetition and n-gram penalties, typical, epsilon and eta sampling) are
        given their neutral values."""
        cfg = self.config
        params = dict(
            do_sample=True,
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            top_k=cfg.top_k,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            typical_p=1.0,
            epsilon_cutoff=0.0,
            eta_cutoff=0.0,
            eos_token_id=self.stop_ids,
            pad_token_id=self.tokenizer.pad_token_id,
            use_cache=True,
        )
        params.update(overrides)
        return GenerationConfig(**params)

    def queries(self, ideas: list[str]) -> list[str]:
        """The query text of each idea: the template filled in, inside the chat template with `chat`."""
        texts = [self.config.template.format(idea=idea) for idea in ideas]
        if not self.config.chat:
            return texts
        system = [{"role": "system", "content": self.config.system_prompt}] if self.config.system_prompt else []
        return [
            self.tokenizer.apply_chat_template(
                [*system, {"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
            )
            for text in texts
        ]

    @torch.no_grad()
    def __call__(self, ideas: list[str], record: bool = False, **overrides) -> Rollout:
        """Sample one prompt per idea. `overrides` replace generation settings for this call.

        `record=True` (a `ValueHeadModel` policy, full-softmax sampling) also records the
        policy's log-prob, entropy and value at each response token in `Rollout.recorded`.
        """
        if not ideas:
            raise UsageError("ideas is empty; pass at least one idea.")
        config = self.generation_config(**overrides)
        device = next(self.model.parameters()).device
        self.tokenizer.padding_side = "left"
        # A chat template writes the special tokens the model expects (a BOS among them, if any).
        enc = self.tokenizer(
            self.queries(ideas), return_tensors="pt", padding=True, add_special_tokens=not self.config.chat
        ).to(device)
        recorder = SamplingRecorder(self.model, config) if record else None
        try:
            out = self.model.generate(
                input_ids=enc.input_ids, attention_mask=enc.attention_mask, generation_config=config
            )
        finally:
            if recorder is not None:
                recorder.remove()
        q_len = enc.input_ids.shape[1]
        queries = [row[mask.bool()].cpu() for row, mask in zip(enc.input_ids, enc.attention_mask)]
        responses = [cut_at_stop(row, self.stop_ids).cpu() for row in out[:, q_len:]]
        recorded = recorder.result(out[:, q_len:], responses) if recorder is not None else None
        prompts = [self.decode(r) for r in responses]
        lengths = torch.tensor([len(r) for r in responses], dtype=torch.float)
        stats = {
            "rollout/response_len_mean": lengths.mean().item(),
            "rollout/hit_max_tokens": (lengths >= self.config.max_new_tokens).float().mean().item(),
        }
        return Rollout(list(ideas), queries, responses, prompts, stats, recorded)

    def decode(self, response: torch.Tensor) -> str:
        text = self.tokenizer.decode(response, skip_special_tokens=True)
        return text.split("\n")[0].strip()


class SamplingRecorder:
    """Hooks on a `ValueHeadModel`'s LM that record, while `generate` samples, what PPO's no-grad
    pass over the policy would compute: each sampled token's log-prob and the entropy of its
    distribution (full softmax at the sampling temperature), and the value of the state before it.

    Every forward of the sampling loop feeds the token sampled last (the LM's pre-hook sees it:
    the previous step's log-softmax is then read at that token), hands the last position's
    hidden state to the LM head (its pre-hook applies the value head) and gets its logits back
    (its hook takes the log-softmax). The last token's log-prob is read from the output.
    """

    def __init__(self, model, config: GenerationConfig):
        if not hasattr(model, "v_head"):
            raise UsageError("record=True needs a ValueHeadModel policy (its value head gives the values).")
        if (config.top_k or 0) > 0 or (config.top_p or 1.0) < 1.0:
            raise UsageError(
                f"record=True records full-softmax log-probs, but top_k={config.top_k} / top_p={config.top_p} "
                "truncate the distribution; set top_k=0 and top_p=1.0 or record nothing."
            )
        lm = base_model(model.pretrained_model)
        head = lm.get_output_embeddings()
        self.v_head, self.temperature = model.v_head, config.temperature or 1.0
        self.logprobs, self.entropy, self.values = [], [], []
        self.pending: torch.Tensor | None = None
        """The last step's log-softmax `[batch, vocab]`, until its sampled token is known."""
        self.handles = [
            lm.register_forward_pre_hook(self._on_inputs, with_kwargs=True),
            head.register_forward_pre_hook(self._on_hidden),
            head.register_forward_hook(self._on_logits),
        ]

    def _take(self, tokens: torch.Tensor) -> None:
        self.logprobs.append(self.pending.gather(-1, tokens[:, None].to(self.pending.device)).squeeze(-1))
        self.pending = None

    def _on_inputs(self, module, args, kwargs) -> None:
        if self.pending is not None:
            ids = kwargs["input_ids"] if kwargs.get("input_ids") is not None else args[0]
            self._take(ids[:, -1])

    def _on_hidden(self, module, args) -> None:
        hidden = args[0][:, -1]
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            self.values.append(self.v_head(hidden.float()).squeeze(-1))

    def _on_logits(self, module, args, output) -> None:
        logp = F.log_softmax(output[:, -1].float() / self.temperature, dim=-1)
        self.entropy.append(entropy_from_logprobs(logp))
        self.pending = logp

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()

    def result(self, new_tokens: torch.Tensor, responses: list[torch.Tensor]) -> PolicyRecord:
        """The record cut to each response's length. new_tokens: `[batch, steps]` sampled ids."""
        if self.pending is not None:
            self._take(new_tokens[:, -1])
        columns = [torch.stack(rows, 1).cpu() for rows in (self.logprobs, self.values, self.entropy)]
        if any(c.shape != new_tokens.shape for c in columns):
            raise RuntimeError(
                f"recorded {[list(c.shape) for c in columns]} for {list(new_tokens.shape)} sampled tokens"
            )
        logprobs, values, entropy = ([c[i, : len(r)] for i, r in enumerate(responses)] for c in columns)
        return PolicyRecord(logprobs, values, entropy)


def cut_at_stop(tokens: torch.Tensor, stop_ids: list[int]) -> torch.Tensor:
    """Tokens up to and including the first stop token (everything after is padding)."""
    hits = torch.isin(tokens, torch.tensor(stop_ids, device=tokens.device)).nonzero()
    if len(hits) == 0:
        return tokens
    return tokens[: int(hits[0]) + 1]


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Mask logits outside the top-k / nucleus (top-p) set with -inf. `[batch, vocab]`."""
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cum = F.softmax(sorted_logits, dim=-1).cumsum(-1)
        drop_sorted = cum - F.softmax(sorted_logits, dim=-1) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


@torch.no_grad()
def respond_to_batch(
    model, queries: torch.Tensor, txt_len: int = 20, top_k: int = 0, top_p: float = 1.0
) -> torch.Tensor:
    """Sample exactly `txt_len` tokens after each query (trl 0.1's `respond_to_batch`).

    queries `[batch, query_len]` (no padding) -> responses `[batch, txt_len]`. EOS does not
    stop sampling, as in the seed.
    """
    if queries.dim() != 2:
        raise UsageError(f"queries must be a 2-D [batch, len] tensor; got shape {list(queries.shape)}.")
    lm = getattr(model, "pretrained_model", model)
    input_ids = queries.to(next(lm.parameters()).device)
    attention_mask = torch.ones_like(input_ids)
    cache = {}
    generated = []
    for _ in range(txt_len):
        out = lm(input_ids=input_ids, attention_mask=attention_mask, use_cache=True, **cache)
        cache = {cache_argument(lm): output_cache(out)}
        logits = filter_logits(out.logits[:, -1, :].float(), top_k=top_k, top_p=top_p)
        next_token = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)
        generated.append(next_token)
        input_ids = next_token
        attention_mask = torch.cat([attention_mask, torch.ones_like(next_token)], dim=1)
    return torch.cat(generated, dim=1)
