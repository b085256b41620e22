"""Instruct policies: `generation.chat` puts the idea in the tokenizer's chat template, sampling
stops at the template's end-of-turn token, and the `qwen2.5-0.5b` preset loads and trains
against the stand-in hub's Qwen/Qwen2.5-0.5B-Instruct (tiny Qwen2, ChatML template)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import byte_tokenizer

from promptrl import PPOConfig, PPOTrainer, ValueHeadModel
from promptrl.config import load_config
from promptrl.ppo.sampling import DEFAULT_SYSTEM_PROMPT, PromptGenerationConfig, PromptGenerator, end_of_turn_ids
from promptrl.ppo.value_head import base_model
from promptrl.standins.hub import QWEN2_5_INSTRUCT

pytestmark = pytest.mark.usefixtures("one_thread")

IDEAS = ["a red fox", "a lighthouse in a storm", "x", "two dogs on a beach at dawn"]


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory) -> str:
    """The stand-in hub's Qwen2.5-0.5B-Instruct files (small), in a plain local directory."""
    from promptrl.standins.lms import write_qwen2

    root = tmp_path_factory.mktemp("qwen2.5-instruct")
    write_qwen2(root, "small")
    return str(root)


def qwen_tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def chatml(idea: str, system: str = DEFAULT_SYSTEM_PROMPT) -> str:
    return f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{idea}<|im_end|>\n<|im_start|>assistant\n"


def force_tokens(model, tokens: list[int]):
    """Make the policy's sampling step k emit `tokens[k]` (the last one from then on), through a
    hook on its LM head; returns the hook's handle and the list of steps it saw."""
    steps = []

    def hook(module, args, output):
        token = tokens[min(len(steps), len(tokens) - 1)]
        steps.append(token)
        forced = torch.full_like(output, float("-inf"))
        forced[..., token] = 0.0
        return forced

    head = base_model(model.pretrained_model).get_output_embeddings()
    return head.register_forward_hook(hook), steps


def test_queries_are_the_chat_template_around_the_system_prompt_and_the_idea(qwen_dir):
    tok = qwen_tokenizer(qwen_dir)
    model = ValueHeadModel.from_pretrained(qwen_dir)
    config = PromptGenerationConfig(chat=True, template="Idea: {idea}", max_new_tokens=2)
    generator = PromptGenerator(model, tok, config)
    assert generator.queries(["a red fox"]) == [chatml("Idea: a red fox")]
    rollout = generator(IDEAS)
    for idea, query in zip(IDEAS, rollout.queries):
        assert tok.decode(query, skip_special_tokens=False) == chatml(f"Idea: {idea}")
        assert query[0] == tok.convert_tokens_to_ids("<|im_start|>")  # no padding, no BOS before it
    # No system prompt: the template's own default system message.
    default = PromptGenerator(model, tok, PromptGenerationConfig(chat=True, system_prompt=""))
    assert default.queries(["a fox"]) == [
        chatml("a fox", system="You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
    ]


def test_a_template_that_writes_a_bos_gets_one_bos(qwen_dir):
    """The chat template's text is tokenized without the tokenizer's own special tokens, so a
    template that starts with the BOS (as Llama's do) does not get a second one."""
    from tokenizers.processors import TemplateProcessing

    tok = qwen_tokenizer(qwen_dir)
    tok.bos_token = "<|endoftext|>"
    bos = tok.bos_token_id
    tok.backend_tokenizer.post_processor = TemplateProcessing(
        single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", bos)]
    )
    tok.chat_template = "{{ bos_token }}" + tok.chat_template
    assert tok("a fox").input_ids[0] == bos  # the tokenizer adds a BOS to plain text
    model = ValueHeadModel.from_pretrained(qwen_dir)
    chat = PromptGenerator(model, tok, PromptGenerationConfig(chat=True, max_new_tokens=1))(IDEAS[:2])
    plain = PromptGenerator(model, tok, PromptGenerationConfig(max_new_tokens=1))(IDEAS[:2])
    for query in chat.queries:
        assert query.tolist().count(bos) == 1 and query[0] == bos
    assert tok.decode(plain.queries[0], skip_special_tokens=False) == "<|endoftext|>a red fox"  # unchanged


@pytest.mark.parametrize("eos", ["<|im_end|>", "<|endoftext|>"], ids=["instruct-eos", "base-eos"])
def test_sampling_stops_at_the_end_of_turn_and_the_prompt_has_no_special_tokens(qwen_dir, eos):
    """The end of turn is the first token the template writes after an assistant message:
    `<|im_end|>`, also when the tokenizer's EOS is another token (Qwen2.5's base models say
    `<|endoftext|>`). A special token sampled inside the reply is stripped from the prompt."""
    tok = qwen_tokenizer(qwen_dir)
    tok.eos_token = eos
    im_start, im_end = tok.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    assert end_of_turn_ids(tok) == [im_end]
    model = ValueHeadModel.from_pretrained(qwen_dir)
    config = PromptGenerationConfig(chat=True, max_new_tokens=10, stop_at_newline=False)
    generator = PromptGenerator(model, tok, config)
    assert sorted(generator.stop_ids) == sorted({tok.eos_token_id, im_end})
    red, fox = (tok(word, add_special_tokens=False).input_ids for word in ("red", " fox"))
    handle, steps = force_tokens(model, [*red, im_start, *fox, im_end])
    try:
        rollout = generator(IDEAS[:2])
    finally:
        handle.remove()
    assert len(steps) == len(red) + len(fox) + 2 < 10  # generation stopped at <|im_end|>, before max_new_tokens
    for response in rollout.responses:
        assert response.tolist() == [*red, im_start, *fox, im_end]
    assert rollout.prompts == ["red fox", "red fox"]


def test_without_chat_nothing_changes(qwen_dir):
    """A chat-capable tokenizer with `chat` off: the plain template, EOS alone ends a prompt."""
    tok = qwen_tokenizer(qwen_dir)
    tok.eos_token = "<|endoftext|>"
    model = ValueHeadModel.from_pretrained(qwen_dir)
    generator = PromptGenerator(model, tok, PromptGenerationConfig(template="Idea: {idea}\nPrompt:"))
    assert generator.queries(["a fox"]) == ["Idea: a fox\nPrompt:"]
    assert tok.convert_tokens_to_ids("<|im_end|>") not in generator.stop_ids


def test_the_model_generation_config_does_not_reshape_what_is_sampled(qwen_dir):
    """Qwen2.5-Instruct's generation_config.json asks for repetition_penalty 1.1, top_k 20,
    top_p 0.8 and temperature 0.7; `generate` applies what the generator leaves unset. The
    generator sets them all, so the scores sampled from are the plain logits (temperature 1)."""
    model = ValueHeadModel.from_pretrained(qwen_dir)
    assert model.generation_config.repetition_penalty == 1.1
    tok = qwen_tokenizer(qwen_dir)
    generator = PromptGenerator(model, tok, PromptGenerationConfig(chat=True, max_new_tokens=6))
    tok.padding_side = "left"
    enc = tok(generator.queries(IDEAS), return_tensors="pt", padding=True, add_special_tokens=False)
    config = generator.generation_config(output_scores=True, output_logits=True, return_dict_in_generate=True)
    out = model.generate(input_ids=enc.input_ids, attention_mask=enc.attention_mask, generation_config=config)
    assert len(out.scores) > 1
    for scores, logits in zip(out.scores, out.logits):
        torch.testing.assert_close(scores, logits, rtol=0, atol=0)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_numbers_recorded_while_sampling_chat_queries_are_the_rollout_pass(qwen_dir, lora):
    """record=True with chat queries (left-padded to different lengths, Qwen2's rotary
    positions) records what PPO's no-grad pass computes, as tests/test_ppo.py checks for plain ones."""
    from peft import LoraConfig

    targets = ["q_proj", "k_proj", "v_proj", "o_proj"]
    peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=targets, task_type="CAUSAL_LM") if lora else None
    model = ValueHeadModel.from_pretrained(qwen_dir, peft_config=peft_config)
    torch.nn.init.normal_(model.v_head.weight, std=0.5)  # non-zero values, so alignment shows
    generator = PromptGenerator(model, qwen_tokenizer(qwen_dir), PromptGenerationConfig(chat=True, max_new_tokens=10))
    generator.stop_ids += list(range(30))  # a random model rarely says <|im_end|>: stop early and often
    torch.manual_seed(0)
    rollout = generator(IDEAS, record=True)
    lengths = [len(r) for r in rollout.responses]
    assert len(set(lengths)) > 1 and len({len(q) for q in rollout.queries}) > 1, lengths
    trainer = PPOTrainer(model, None, None, config=PPOConfig(batch_size=4))
    expected = trainer.rollout_pass(rollout.queries, rollout.responses)
    for name in ("logprobs", "values", "entropy"):
        for i, n in enumerate(lengths):
            got = getattr(rollout.recorded, name)[i]
            assert got.shape == (n,), name
            torch.testing.assert_close(got, getattr(expected, name)[i, :n], rtol=0, atol=2e-5, msg=name)


def test_a_tokenizer_without_a_chat_template_is_refused(gpt2_dir):
    model = ValueHeadModel.from_pretrained(gpt2_dir)
    with pytest.raises(
        ValueError, match=r"'generation\.chat' is true, but the policy's tokenizer has no chat template"
    ):
        PromptGenerator(model, byte_tokenizer(), PromptGenerationConfig(chat=True))
    PromptGenerator(model, byte_tokenizer(), PromptGenerationConfig())  # a base model without chat is fine


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("generation.chat=maybe", r"'generation\.chat' expects bool"),
        ("generation.system_prompt=Write a prompt for {idea}", r"'generation\.system_prompt' contains '\{idea\}'"),
        ("generation.system_prompt=[1]", r"'generation\.system_prompt' expects str"),
    ],
)
def test_bad_chat_settings_name_their_key(override, message):
    with pytest.raises(ValueError, match=message):
        load_config("tiny", overrides=[override])


def test_the_qwen_preset():
    config = load_config("qwen2.5-0.5b")
    assert config.policy.model == QWEN2_5_INSTRUCT and config.policy.lora
    assert config.policy.lora_target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert config.generation.chat and config.generation.system_prompt == DEFAULT_SYSTEM_PROMPT
    assert (config.algorithm, config.samples_per_idea, config.rewards.baseline) == ("grpo", 4, "none")
    assert (config.grpo.beta, config.grpo.loss_type, config.grpo.scale_rewards) == (0.0, "dapo", "group")
    assert 1e-5 <= config.ppo.lr <= 5e-5
    assert config.render == load_config("bloom-560m").render  # sd-turbo, 1 step, 512x512
    ppo = load_config("qwen2.5-0.5b", overrides=["algorithm=ppo", "rewards.baseline=group"])
    assert ppo.algorithm == "ppo" and ppo.generation.chat


# -- against the stand-in hub, by the hub name ------------------------------------------------
@pytest.mark.slow
def test_the_hub_name_loads_offline_as_an_instruct_policy(standin_hub, tmp_path):
    from test_real_path import run

    code = """
import json, torch
from transformers import AutoTokenizer
from promptrl.ppo import ValueHeadModel
from promptrl.ppo.sampling import PromptGenerationConfig, PromptGenerator
name = "Qwen/Qwen2.5-0.5B-Instruct"
policy = ValueHeadModel.from_pretrained(name)
tok = AutoTokenizer.from_pretrained(name)
generator = PromptGenerator(policy, tok, PromptGenerationConfig(chat=True, max_new_tokens=4))
rollout = generator(["a red fox", "a lighthouse"])
print("FACTS", json.dumps({
    "model_type": policy.config.model_type, "dtype": str(next(policy.pretrained_model.parameters()).dtype),
    "tied": policy.pretrained_model.lm_head.weight is policy.pretrained_model.model.embed_tokens.weight,
    "tokenizer": type(tok).__name__, "special": [tok.eos_token, tok.pad_token, tok.bos_token],
    "generation_eos": policy.generation_config.eos_token_id,
    "ids": tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"]),
    "query": tok.decode(rollout.queries[0], skip_special_tokens=False), "prompts": len(rollout.prompts),
}))
"""
    proc = run(standin_hub, "-c", code, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    facts = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("FACTS "))[6:])
    im_end, endoftext = facts.pop("ids")
    assert facts == {
        "model_type": "qwen2",
        "dtype": "torch.float32",  # stored in bf16, trained in fp32
        "tied": True,
        "tokenizer": "Qwen2Tokenizer",
        "special": ["<|im_end|>", "<|endoftext|>", None],
        "generation_eos": [im_end, endoftext],
        "query": chatml("a red fox"),
        "prompts": 2,
    }


@pytest.mark.slow
def test_train_the_qwen_preset_with_grpo_two_steps(standin_hub, tmp_path):
    """`promptrl train --preset qwen2.5-0.5b` by the hub names: GRPO on groups of 4 chat
    samples, LoRA on the four attention projections, no value head saved."""
    from test_real_path import SMALL_RUN, cli, sets

    shared = [o for o in SMALL_RUN if not o.startswith(("ppo.", "samples_per_idea=", "steps="))]
    run_dir = tmp_path / "run"
    overrides = ["ppo.batch_size=4", "ppo.mini_batch_size=2", "ppo.forward_batch_size=4", "steps=2", *shared]
    proc = cli(
        standin_hub, "train", "--preset", "qwen2.5-0.5b", *sets(overrides), "--output-dir", str(run_dir), cwd=tmp_path
    )
    assert "Trained 2 steps" in proc.stdout
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for key in ("reward/total/mean", "reward/aesthetic/mean", "grpo/loss/policy", "grpo/policy/ratio"):
        assert all(math.isfinite(row[key]) for row in rows), key
    adapter = json.loads((run_dir / "model" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == QWEN2_5_INSTRUCT
    assert set(adapter["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    samples = (run_dir / "samples.md").read_text()
    assert "<|im_end|>" not in samples and "<|im_start|>" not in samples
