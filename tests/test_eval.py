"""`promptrl eval`, the held-out split and the held-out judge, on a short tiny run."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from promptrl.cli import main
from promptrl.config import load_config
from promptrl.eval.compare import (
    added_words,
    bootstrap_indices,
    heldout_split,
    paired_stats,
    prompt_stats,
    resolve_judges,
)
from promptrl.eval.evaluate import evaluate_model
from promptrl.ideas import load_ideas
from promptrl.plots import plot_report
from promptrl.standins.tiny import resolve_tiny
from promptrl.trainer import PromptTrainer

# A reward the tiny policy learns in a dozen steps: the penalty for words beyond the first
# (random-init prompts run ~4.7 words; after 12 steps at lr 1e-2, ~2).
RUN_SETTINGS = [
    "sft.enabled=false",
    "steps=12",
    "ppo.lr=1e-2",
    "ppo.init_kl_coef=0.0",
    "ppo.batch_size=16",
    "ppo.mini_batch_size=8",
    "ppo.forward_batch_size=16",
    "rewards.terms=[{type: penalty, max_words: 1}]",
    "trackers=[]",
    "progress=false",
    "generation.max_new_tokens=8",
    "render.height=32",
    "render.width=32",
    "eval.heldout=8",
    "eval.samples=2",
    "eval.every=6",
    "save_every=0",
    "image_every=0",
    "eval_ideas=1",
]


@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory):
    """A tiny run that learned its reward, its own held-out comparison read before anyone
    overwrites it."""
    out = tmp_path_factory.mktemp("tuned-run")
    trainer = PromptTrainer(load_config("tiny", None, [f"output_dir={out}", *RUN_SETTINGS]))
    trainer.train()
    return out, json.loads((out / "eval" / "eval.json").read_text()), trainer


def test_eval_detects_what_the_run_learned(tuned_run, tmp_path):
    run, _, _ = tuned_run
    result, out = evaluate_model(str(run), out=str(tmp_path), progress=False)
    penalty = result.rewards["penalty"]
    assert penalty["significant"] and penalty["diff"] > 0.5 and penalty["diff_ci"][0] > 0
    assert penalty["win_rate_ci"][0] > 0.5
    assert result.prompts["tuned"]["mean_words"] < result.prompts["base"]["mean_words"]
    assert "judge/pickscore" in result.rewards  # the tiny preset's judge
    assert len(result.pairs) == 8 * 2 and result.names["base"].endswith("policy")
    md = (out / "eval.md").read_text()
    assert "| penalty |" in md and " * |" in md and "Most frequent added words" in md
    assert (out / "eval.png").exists()


def test_model_against_itself_shows_no_difference(tuned_run, tmp_path):
    run, _, _ = tuned_run
    result, _ = evaluate_model(str(run), base=str(run / "model"), out=str(tmp_path), progress=False)
    for name, s in result.rewards.items():
        # same weights, same sampling and image seeds: every pair is a tie
        assert s["diff"] == 0 and s["diff_ci"] == [0.0, 0.0] and not s["significant"], name
        assert s["win_rate"] == 0.5 and s["base"] == s["tuned"]
    assert result.prompts["added_words"] == []


def test_eval_is_reproducible_and_matches_the_runs_own_report(tuned_run, tmp_path, capsys):
    run, own, _ = tuned_run
    for name in ("a", "b"):
        assert main(["eval", "--model", str(run), "--out", str(tmp_path / name)]) == 0
    printed = capsys.readouterr().out
    assert "penalty:" in printed and "better" in printed and "eval.md" in printed
    a, b = (json.loads((tmp_path / n / "eval.json").read_text()) for n in ("a", "b"))
    assert a == b
    # the CLI, loading the saved models, reproduces the comparison the trainer made in memory
    assert a["rewards"] == own["rewards"] and a["pairs"] == own["pairs"]


def test_heldout_ideas_are_never_trained_on(tuned_run):
    run, own, trainer = tuned_run
    heldout = (run / "heldout.txt").read_text().splitlines()
    assert heldout == trainer.heldout == own["ideas"] and len(heldout) == 8
    samples_md = (run / "samples.md").read_text()
    assert "## Held-out ideas" in samples_md and "| penalty |" in samples_md
    seen = {idea for step in range(40) for idea in trainer.ideas_for_step(step)}
    assert not seen & set(heldout) and len(seen) > 100


def test_judge_is_logged_every_eval_every_steps_and_plotted(tuned_run):
    run, _, _ = tuned_run
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    judged = [r["step"] for r in rows if "judge/pickscore/mean" in r]
    assert judged == [6, 12]
    assert all(r["heldout/penalty/mean"] == r["heldout/total/mean"] for r in rows if r["step"] in judged)
    # the held-out training reward at the last step is the tuned side of the final comparison
    own = json.loads((run / "eval" / "eval.json").read_text())
    assert rows[-1]["heldout/penalty/mean"] == pytest.approx(own["rewards"]["penalty"]["tuned"])
    assert (run / "report.png").exists()


def test_heldout_split_is_deterministic_and_capped():
    ideas = [f"idea {i}" for i in range(40)]
    train, held = heldout_split(ideas, 8, seed=0)
    assert len(held) == 8 and not set(train) & set(held) and len(train) == 32
    assert heldout_split(list(reversed(ideas)), 8, seed=0)[1] == list(reversed(held))  # order-free
    assert heldout_split(ideas + ["idea 0"], 8, seed=0)[1] == held  # duplicates do not move it
    assert heldout_split(ideas, 8, seed=1)[1] != held
    assert heldout_split(ideas, 100, seed=0)[1].__len__() == 10  # at most a quarter
    assert heldout_split(["a", "b", "c"], 8) == (["a", "b", "c"], [])
    assert heldout_split([f"idea {i}" for i in range(7)], 8)[1] == []  # one idea is no held-out set
    assert len(heldout_split([f"idea {i}" for i in range(8)], 8)[1]) == 2
    bundled = heldout_split(load_ideas("bundled"), 16)[1]
    assert len(bundled) == 16


def test_paired_stats_by_hand():
    base = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    idx = bootstrap_indices(3, 2, 500, seed=0)
    s = paired_stats(base, base + 1.0, idx)
    # every pair differs by exactly 1: the difference's interval is [1, 1], tuned always wins
    assert s["diff"] == 1.0 and s["diff_ci"] == [1.0, 1.0] and s["win_rate"] == 1.0 and s["significant"]
    assert s["base"] == 2.5 and s["tuned"] == 3.5 and s["base_ci"][0] < 2.5 < s["base_ci"][1]
    ties = paired_stats(base, base.copy(), idx)
    assert ties["win_rate"] == 0.5 and ties["diff_ci"] == [0.0, 0.0] and not ties["significant"]
    # tuned wins 2 pairs, ties 2, loses 2: (2 + 0.5 * 2) / 6 = 0.5
    tuned = base + np.array([[1.0, 0.0], [-1.0, 1.0], [0.0, -1.0]])
    assert paired_stats(base, tuned, idx)["win_rate"] == 0.5


def test_one_idea_still_gets_an_interval_from_its_samples():
    base = np.array([[0.0, 1.0, 2.0, 3.0]])
    s = paired_stats(base, base + np.array([[1.0, -1.0, 0.5, -0.5]]), bootstrap_indices(1, 4, 2000, seed=0))
    # mean difference 0 from four paired samples: resampling the samples spans 0
    assert s["diff"] == 0 and s["diff_ci"][0] < 0 < s["diff_ci"][1] and not s["significant"]


def test_bootstrap_separates_noise_from_a_shift():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(30, 4))
    idx = bootstrap_indices(30, 4, 2000, seed=0)
    same = paired_stats(base, rng.normal(size=(30, 4)), idx)
    assert not same["significant"] and same["diff_ci"][0] < 0 < same["diff_ci"][1]
    shifted = paired_stats(base, base + rng.normal(0.5, 1.0, size=(30, 4)), idx)
    assert shifted["significant"] and shifted["diff_ci"][0] > 0
    assert paired_stats(base, base + 0.1, bootstrap_indices(30, 4, 2000, seed=0)) == paired_stats(base, base + 0.1, idx)


def test_prompt_statistics_by_hand():
    prompts = ["a red fox, oil painting", "a red fox", "a red fox, oil painting"]
    s = prompt_stats(prompts, np.array([[True, False], [False, False]]))
    # unigrams: 5 + 3 + 5 = 13, distinct {a, red, fox, oil, painting} = 5
    assert s["distinct_1"] == pytest.approx(5 / 13)
    # bigrams: 4 + 2 + 4 = 10, distinct {a red, red fox, fox oil, oil painting} = 4
    assert s["distinct_2"] == pytest.approx(4 / 10)
    assert s["mean_words"] == pytest.approx(13 / 3) and s["truncated_share"] == 0.25
    assert added_words(["a fox"], ["a fox, trending, trending", "hd fox"]) == [
        ["trending", 2],
        ["fox", 1],
        ["hd", 1],
    ]


def test_default_judge_is_a_preference_model_not_trained_on():
    tiny = resolve_tiny(load_config("tiny"))
    assert resolve_judges(tiny.eval.judges, tiny.rewards) == [{"type": "pickscore"}]
    # unset, the judge is the first preference model at hand that the reward does not use
    assert resolve_judges(None, tiny.rewards) == [{"type": "pickscore"}]
    trained_on_pickscore = dataclasses.replace(tiny.rewards, terms=[{"type": "pickscore"}])
    assert resolve_judges(None, trained_on_pickscore) == [{"type": "hps"}]
    real = load_config("bloom-560m", None, ["rewards.pickscore_model=/nonexistent/pickscore"])
    # PickScore and HPSv2.1 are not on this machine: the fallback is the similarity reward
    assert resolve_judges(None, real.rewards) == [{"type": "similarity"}]


def test_cli_eval_errors_are_one_line(tmp_path, capsys, bloom_dir):
    assert main(["eval", "--model", str(tmp_path / "missing")]) == 2
    assert main(["eval", "--model", bloom_dir]) == 2
    assert main(["eval", "--model", bloom_dir, "--judges", "lpips"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "does not exist" in err[0] and "--base" in err[1]
    assert "--judges: unknown reward type(s) lpips; allowed: aesthetic" in err[2]
    with pytest.raises(ValueError, match="eval.samples.*at least 1"):
        load_config("tiny", None, ["eval.samples=0"])
    with pytest.raises(ValueError, match="eval.judges.*'lpips'.*pickscore"):
        load_config("tiny", None, ["eval.judges=[{type: lpips}]"])


def test_report_gets_a_judge_panel_when_a_judge_ran(tmp_path):
    from PIL import Image

    history = [
        {"step": s, "reward/total/mean": 0.1 * s, "objective/kl": 0.0, "objective/kl_coef": 0.1} for s in range(1, 5)
    ]
    plot_report(history, tmp_path / "plain.png")
    history[1]["judge/pickscore/mean"] = history[3]["judge/pickscore/mean"] = 20.0
    plot_report(history, tmp_path / "judged.png")
    # one more 4-inch panel at 90 dpi: reward, KL, KL coefficient, then the judge
    widths = [Image.open(tmp_path / f"{n}.png").size[0] for n in ("plain", "judged")]
    assert widths == [3 * 360, 4 * 360]


def test_judging_leaves_training_unchanged(tmp_path):
    """The judge samples under its own seeds: a run judged every step trains exactly as one
    never judged."""
    small = [
        *RUN_SETTINGS,
        "steps=3",
        "ppo.batch_size=8",
        "ppo.mini_batch_size=4",
        "ppo.forward_batch_size=8",
    ]

    def run(every: int, out: str) -> list[dict]:
        config = load_config("tiny", None, [f"output_dir={tmp_path / out}", *small, f"eval.every={every}"])
        history = PromptTrainer(config).train()
        return [{k: v for k, v in row.items() if not k.startswith(("time/", "judge/", "heldout/"))} for row in history]

    judged, plain = run(1, "judged"), run(0, "plain")
    assert judged == plain


def test_cli_flags_choose_ideas_rewards_and_judges(tuned_run, tmp_path):
    run, _, _ = tuned_run
    ideas = tmp_path / "ideas.txt"
    ideas.write_text("a red barn\na blue boat\n")
    args = [
        "eval",
        "--model",
        str(run / "model"),
        "--ideas",
        str(ideas),
        "--samples",
        "3",
        "--rewards",
        "aesthetic",
        "similarity",
        "--judges",
        "hps",
        "--out",
        str(tmp_path / "out"),
    ]
    assert main(args) == 0
    result = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert result["ideas"] == ["a red barn", "a blue boat"] and result["samples"] == 3
    assert list(result["rewards"]) == [
        "total",
        "aesthetic",
        "similarity",
        "judge/pickscore",
        "judge/hps",
    ]
    assert len(result["pairs"]) == 6


def test_eval_uses_the_ideas_the_run_recorded_as_held_out(tuned_run, tmp_path, caplog):
    import shutil

    run, own, _ = tuned_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "heldout.txt").write_text("a red barn\na blue boat\n")
    result, _ = evaluate_model(str(copy), samples=1, progress=False)
    assert result.ideas == ["a red barn", "a blue boat"]
    (copy / "heldout.txt").unlink()  # a run from before held-out splits: recomputed, with a warning
    result, _ = evaluate_model(str(copy), samples=1, progress=False)
    assert result.ideas == own["ideas"] and "records no held-out ideas" in caplog.text
