"""The supervised warm start (sft.py): corpus parsing, example encoding, and that training
lowers the loss."""

from __future__ import annotations

import pytest
import torch
from conftest import EOS_ID, byte_tokenizer

from promptrl.config import SFTConfig
from promptrl.ppo.value_head import ValueHeadModel
from promptrl.sft import encode_example, load_corpus, supervised_finetune

TEMPLATE = "Idea: {idea}\nPrompt:"


def test_load_corpus_reads_pairs_and_bare_prompts(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("a cat\ta cat on a mat, oil painting\n\n   \n a bare prompt, 4k \n  an idea \t  its prompt  \n")
    assert load_corpus(path) == [
        ("a cat", "a cat on a mat, oil painting"),
        ("", "a bare prompt, 4k"),  # no tab: a prompt without an idea
        ("an idea", "its prompt"),
    ]


def test_bundled_corpus_has_ideas_and_prompts():
    pairs = load_corpus("bundled")
    assert len(pairs) > 10 and all(prompt for _, prompt in pairs)
    assert sum(bool(idea) for idea, _ in pairs) > len(pairs) // 2


def test_load_corpus_errors_say_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; pass a text file"):
        load_corpus(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(ValueError, match="holds no examples"):
        load_corpus(empty)


def test_encode_example_masks_the_query_and_ends_with_eos():
    tok = byte_tokenizer()  # one token per ASCII character
    ids, labels = encode_example(tok, TEMPLATE, "ab", "cd", max_length=96)
    query = "Idea: ab\nPrompt:"  # 16 characters
    assert tok.decode(ids[:16]) == query and len(query) == 16
    assert tok.decode(ids[16:19]) == " cd" and ids[19] == EOS_ID and len(ids) == 20
    assert labels == [-100] * 16 + ids[16:]
    # max_length 18 leaves 2 target tokens: " c"
    ids, labels = encode_example(tok, TEMPLATE, "ab", "cd", max_length=18)
    assert len(ids) == 18 and tok.decode(ids[16:]) == " c" and labels[16:] == ids[16:]
    # without an idea there is no query: the whole prompt (no leading space) is the target
    ids, labels = encode_example(tok, TEMPLATE, "", "cd", max_length=96)
    assert tok.decode(ids[:2]) == "cd" and ids[2] == EOS_ID and labels == ids


def mean_loss(lm, tok, pairs) -> float:
    losses = []
    with torch.no_grad():
        for idea, prompt in pairs:
            ids, labels = encode_example(tok, TEMPLATE, idea, prompt, 96)
            losses.append(lm(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss.item())
    return sum(losses) / len(losses)


def test_supervised_finetune_lowers_the_loss(gpt2_dir):
    torch.manual_seed(0)
    tok = byte_tokenizer()
    model = ValueHeadModel.from_pretrained(gpt2_dir)
    pairs = [
        ("a cat", "a cat on a mat, oil painting"),
        ("the sea", "the sea at night, photograph"),
        ("", "a red door, watercolour"),
    ]
    before = mean_loss(model.pretrained_model, tok, pairs)
    losses = supervised_finetune(
        model, tok, pairs, SFTConfig(epochs=15, lr=3e-3, batch_size=2), TEMPLATE, progress=False
    )
    after = mean_loss(model.pretrained_model, tok, pairs)
    assert len(losses) == 15 * 2  # 3 pairs in batches of 2: 2 steps per epoch
    assert after < 0.7 * before, (before, after)  # random init: ~ln(258) = 5.55 nats per token
    assert losses[-1] < losses[0]


def test_the_sft_command_loads_no_image_model(tmp_path, capsys):
    """`promptrl sft` is text only: a pipeline and CLIP model that cannot load do not stop it,
    because the trainer loads them when first needed, and SFT never needs them."""
    from promptrl.cli import main
    from promptrl.config import load_config
    from promptrl.errors import NotFoundError
    from promptrl.trainer import PromptTrainer

    unloadable = [
        f"render.pipeline={tmp_path / 'no-pipeline'}",
        f"rewards.clip_pretrained={tmp_path / 'no-weights.bin'}",
        "sft.epochs=1",
        "sft.batch_size=4",
        "trackers=[]",
        "progress=false",
    ]
    out = tmp_path / "run"
    args = ["sft", "--preset", "tiny", "--output-dir", str(out)]
    assert main([*args, *(a for pair in unloadable for a in ("--set", pair))]) == 0
    assert "Supervised warm start saved to" in capsys.readouterr().out
    assert (out / "sft" / "config.json").exists() and (out / "sft" / "sft_losses.json").exists()
    # the same trainer fails on first use of what it did not need
    trainer = PromptTrainer(load_config("tiny", None, [*unloadable, f"output_dir={tmp_path / 'again'}"]))
    with pytest.raises(NotFoundError, match="no-pipeline"):
        trainer.renderer  # noqa: B018 (the property loads it)
