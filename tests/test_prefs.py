"""The rating store, the Bradley-Terry fit and the `preference` reward, without the app.

A simulated rater prefers redder images (mean red minus mean green and blue), a fact about the
pixels that the prompts do not state; images are flat colours with noise so the test needs no
renderer. The app-level test (a rater driving the Rate tab through its API) is test_rate_app.py.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from promptrl.errors import PromptrlError, UsageError
from promptrl.prefs.store import Choice, PreferenceStore
from promptrl.rewards.embedders import TINY_CLIP_NAME


def redness(images: np.ndarray) -> float:
    a = np.asarray(images, dtype=np.float64)
    return float(a[..., 0].mean() - a[..., 1:].mean())


def random_image(rng) -> np.ndarray:
    base = rng.uniform(0, 1, 3)
    return (np.clip(base[None, None] + rng.normal(0, 0.15, (64, 64, 3)), 0, 1) * 255).astype(np.uint8)


def rate(store: PreferenceStore, n: int, rater: str = "local", seed: int = 0) -> None:
    """`n` choices of a rater who prefers the redder image (ties when they are close)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        a, b = random_image(rng), random_image(rng)
        gap = redness(a) - redness(b)
        choice = "tie" if abs(gap) < 2 else ("a" if gap > 0 else "b")
        store.add(
            Choice(rater, f"idea {i % 7}", "p a", "p b", store.put_image(a), store.put_image(b), choice, seed_a=i)
        )


@pytest.fixture
def store(tmp_path):
    s = PreferenceStore(tmp_path / "preferences.db", tmp_path / "preference-images")
    yield s
    s.close()


def test_a_choice_round_trips_and_images_are_named_by_content(store):
    rate(store, 3)
    rows = store.choices("local")
    assert len(rows) == 3 and store.count("someone else") == 0
    assert rows[0].seed_a == 0 and rows[0].choice in ("a", "b", "tie") and rows[0].created > 0
    assert store.image_path(rows[0].image_a).is_file()
    with pytest.raises(UsageError, match="choice 'maybe' is not one of a, b, tie, both_bad"):
        store.add(Choice("local", "i", "p", "q", rows[0].image_a, rows[0].image_b, "maybe"))
    assert store.count() == 3


def test_schema_version_and_a_newer_store_is_refused(store, tmp_path):
    assert store.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("2",)
    assert store.conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    store.conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(UsageError, match="schema 99, newer than"):
        PreferenceStore(store.db, store.images_dir)
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    with pytest.raises(UsageError, match="junk.db.*is not a promptrl preference database"):
        PreferenceStore(tmp_path / "junk.db", tmp_path / "img")


def test_a_version_1_store_is_migrated_and_keeps_its_rows(tmp_path):
    from promptrl.prefs.store import MIGRATIONS

    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    for statement in MIGRATIONS[1]:
        conn.execute(statement)
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    conn.execute(
        "INSERT INTO choices (rater, idea, prompt_a, prompt_b, seed_a, seed_b, settings, image_a, image_b, choice, "
        "created, model, step) VALUES ('ann', 'i', 'p', 'q', 3, 3, '{}', ?, ?, 'a', 1.0, 'm', 5)",
        ("0" * 64, "1" * 64),
    )
    conn.commit()
    conn.close()
    store = PreferenceStore(db, tmp_path / "img")
    assert store.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("2",)
    (row,) = store.choices()
    assert (row.rater, row.step, row.round_id) == ("ann", 5, "")
    store.close()


def test_folds_keep_a_best_of_four_together():
    from promptrl.prefs.fit import folds

    groups = torch.tensor([0, 0, 0, 1, 2, 2, 2, 3, 4, 5, 6, 6, 6])
    fold_of = folds(groups, 3)
    for g in groups.unique():
        assert len(fold_of[groups == g].unique()) == 1
    assert set(fold_of.tolist()) == {0, 1, 2}
    # one pair per group: pair order[j] of a seeded shuffle lands in fold j % k
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    assert folds(torch.arange(10), 5).tolist() == [int((order == i).nonzero()) % 5 for i in range(10)]


def test_a_corrupt_row_is_named_and_the_others_stay(store):
    rate(store, 3)
    store.conn.execute("UPDATE choices SET settings='{broken' WHERE id=2")
    with pytest.raises(UsageError, match="row 2 is corrupt"):
        store.choices()
    store.conn.execute("UPDATE choices SET settings='{}' WHERE id=2")
    assert len(store.choices()) == 3


def test_export_import_round_trip_and_datasets_reads_it(store, tmp_path):
    import datasets

    rate(store, 5)
    path = store.export_jsonl(tmp_path / "export")
    ds = datasets.load_dataset("json", data_files=str(path), split="train")
    assert len(ds) == 5 and {"idea", "prompt_a", "image_a", "choice", "rater"} <= set(ds.column_names)
    other = PreferenceStore(tmp_path / "b.db", tmp_path / "b-images")
    assert other.import_jsonl(path) == 5
    assert [c.image_a for c in other.choices()] == [c.image_a for c in store.choices()]
    assert (
        other.image_path(other.choices()[0].image_b).read_bytes()
        == store.image_path(store.choices()[0].image_b).read_bytes()
    )


def test_a_malformed_import_names_its_line_and_adds_nothing(store, tmp_path):
    rate(store, 3)
    path = store.export_jsonl(tmp_path / "export")
    lines = path.read_text().splitlines()
    bad = json.loads(lines[1])
    bad["choice"] = "neither"
    path.write_text("\n".join([lines[0], json.dumps(bad), lines[2]]) + "\n")
    other = PreferenceStore(tmp_path / "b.db", tmp_path / "b-images")
    with pytest.raises(UsageError, match=r"choices.jsonl:2: choice 'neither'"):
        other.import_jsonl(path)
    path.write_text(lines[0] + "\n{not json\n")
    with pytest.raises(UsageError, match=r"choices.jsonl:2 is not a rating row"):
        other.import_jsonl(path)
    assert other.count() == 0
    (tmp_path / "export" / "images" / f"{json.loads(lines[0])['image_a']}.png").write_bytes(b"tampered")
    path.write_text(lines[0] + "\n")
    with pytest.raises(UsageError, match="does not match its name"):
        other.import_jsonl(path)
    assert other.count() == 0


def test_a_choice_of_several_rows_is_stored_whole_or_not_at_all(store, tmp_path):
    """A best-of-four's rows in one transaction: a bad row leaves none of them; a bad line in an
    import (a seed that is not a number) adds nothing."""
    rate(store, 2)
    ok = store.choices()[0]
    good = Choice("ann", "i", "p", "q", ok.image_a, ok.image_b, "a", round_id="r1")
    unjsonable = Choice("ann", "i", "p", "q", ok.image_a, ok.image_b, "b", round_id="r1", settings={"x": {1, 2}})
    with pytest.raises(UsageError, match="settings are not JSON"):
        store.add_all([good, unjsonable])
    with pytest.raises(UsageError, match="seed_a must be a whole number"):
        store.add_all([good, Choice("ann", "i", "p", "q", ok.image_a, ok.image_b, "b", seed_a=-1)])
    assert store.count("ann") == 0 and store.count() == 2
    # A failure inside the transaction (here a trigger refusing the second row) undoes the first.
    store.conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON choices WHEN NEW.idea = 'boom' BEGIN SELECT RAISE(ABORT, 'no'); END"
    )
    boom = Choice("ann", "boom", "p", "q", ok.image_a, ok.image_b, "b", round_id="r1")
    with pytest.raises(sqlite3.IntegrityError):
        store.add_all([good, boom])
    assert store.count("ann") == 0
    store.conn.execute("DROP TRIGGER refuse")

    path = store.export_jsonl(tmp_path / "export")
    lines = path.read_text().splitlines()
    bad = json.loads(lines[1])
    bad["seed_a"] = [1]
    path.write_text("\n".join([lines[0], json.dumps(bad)]) + "\n")
    other = PreferenceStore(tmp_path / "b.db", tmp_path / "b-images")
    with pytest.raises(UsageError, match=r"choices.jsonl:2: seed_a must be a whole number"):
        other.import_jsonl(path)
    assert other.count() == 0


def test_the_size_bound_counts_the_images(tmp_path):
    store = PreferenceStore(tmp_path / "p.db", tmp_path / "img", max_bytes=10**9)
    rate(store, 1)
    db_only = sum(p.stat().st_size for p in tmp_path.glob("p.db*"))
    assert store.size_bytes() > db_only  # the two PNGs count
    store.max_bytes = db_only + 10  # room for the database, not for its images
    with pytest.raises(UsageError, match="over its .*-byte limit"):
        store.check_room()


def test_a_half_written_head_is_a_clear_error(store, tmp_path):
    from promptrl.prefs.fit import fit_preferences
    from promptrl.rewards.learned import HEAD_WEIGHTS, load_head

    rate(store, 20)
    fit_preferences(store, tmp_path / "mine", TINY_CLIP_NAME, None, rater="local", k=2)
    assert not list(tmp_path.glob(".tmp-*"))  # written whole, then swapped in
    weights = tmp_path / "mine" / HEAD_WEIGHTS
    weights.write_bytes(weights.read_bytes()[:5])
    with pytest.raises(UsageError, match="is not a valid head"):
        load_head(tmp_path / "mine")


WRITER = """
import sys, time, numpy as np
from promptrl.prefs.store import Choice, PreferenceStore
db, rater, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = PreferenceStore(db, db + "-images")
img = s.put_image(np.zeros((8, 8, 3), np.uint8))
for i in range(n):
    row = s.add(Choice(rater, "idea", "a", "b", img, img, "a", seed_a=i))
    print(row, flush=True)
"""


def test_kill_9_loses_no_committed_choice_and_two_raters_write_at_once(tmp_path):
    db = str(tmp_path / "preferences.db")
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, db, rater, "100000"], stdout=subprocess.PIPE, text=True)
        for rater in ("ann", "bob")
    ]
    committed = {p: [] for p in procs}
    deadline = time.time() + 60
    while time.time() < deadline and min(len(v) for v in committed.values()) < 40:
        for p in procs:
            committed[p].append(int(p.stdout.readline()))
    for p in procs:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    store = PreferenceStore(db, db + "-images")
    ids = {c.id: c.rater for c in store.choices()}
    for p, rater in zip(procs, ("ann", "bob")):
        assert len(committed[p]) >= 40
        assert all(ids.get(i) == rater for i in committed[p])  # every reported commit survived
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_fit_learns_a_hidden_taste_and_becomes_a_reward(store, tmp_path):
    from promptrl.prefs.fit import fit_preferences
    from promptrl.rewards import build_reward

    rate(store, 200)
    info = fit_preferences(store, tmp_path / "mine", TINY_CLIP_NAME, None, rater="local")
    assert info["pairs"] <= 200 and info["accuracy"] >= 0.85, info
    assert info["accuracy_95"][0] < info["accuracy"] < info["accuracy_95"][1]
    assert (tmp_path / "mine" / "fit.png").stat().st_size > 1000
    assert not list((tmp_path / "mine").glob("*.pt")) and not list((tmp_path / "mine").glob("*.pkl"))
    reward = build_reward([{"type": "preference", "path": str(tmp_path / "mine")}], device="cpu")
    rng = np.random.default_rng(1)
    images = np.stack([random_image(rng) for _ in range(64)])
    scores = reward(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255, [""] * 64, ["idea 1"] * 64)
    reds = [redness(im) for im in images]
    assert np.corrcoef(scores.numpy(), reds)[0, 1] > 0.7


def test_fitting_too_few_pairs_and_a_missing_reward_are_clear_errors(store, tmp_path):
    from promptrl.prefs.fit import fit_preferences
    from promptrl.rewards import build_reward

    rate(store, 3)
    with pytest.raises(UsageError, match="rate at least 10 pairs"):
        fit_preferences(store, tmp_path / "mine", TINY_CLIP_NAME, None)
    with pytest.raises(PromptrlError, match="has no head.safetensors"):
        build_reward([{"type": "preference", "path": str(tmp_path / "nothing")}])
    with pytest.raises(UsageError, match="needs path"):
        build_reward([{"type": "preference"}])


def test_prefs_cli_show_export_import_fit(tmp_path, capsys):
    from promptrl.cli import main

    s = PreferenceStore(tmp_path / "runs" / "preferences.db", tmp_path / "runs" / "preference-images")
    rate(s, 30)
    s.close()
    runs = ["--runs-dir", str(tmp_path / "runs")]
    assert main(["prefs", "show", *runs]) == 0
    assert json.loads(capsys.readouterr().out)["choices"] == 30
    assert main(["prefs", "export", *runs, "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    other = ["--prefs-db", str(tmp_path / "other.db")]
    assert main(["prefs", "import", *other, str(tmp_path / "out" / "choices.jsonl")]) == 0
    assert "imported 30 choices" in capsys.readouterr().out
    assert main(["prefs", "fit", *other, "--out", str(tmp_path / "mine"), "--folds", "3"]) == 0
    assert "held-out accuracy" in capsys.readouterr().out
    assert main(["prefs", "import", *other, str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl' does not exist" in capsys.readouterr().err
