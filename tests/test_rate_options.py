"""The Rate tab's options, driven through the API as two visitors (ann and bob) would.

Each app serves a two-step tiny run, so every row must record step 2 (the served model's step,
not 0). Four images: picking C stores the three pairs C decides. `--shared-ratings` off, a
visitor counts and fits only their own choices; on, everyone's. "Train on my reward" starts a
run whose reward is that visitor's fitted reward. The stores are filled beforehand with
synthetic choices (tests/test_prefs.py's red-loving rater), so no test waits on 10 renders.
Without a server: the rows a best of four becomes, the closest-scores rule, the command line's
flag and a multi-user auth file.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import time  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from conftest import TRAIN_OVERRIDES  # noqa: E402
from test_prefs import random_image, rate  # noqa: E402

USERS = [("ann", "ann-password"), ("bob", "bob-password")]
ANN, BOB = 12, 20
"""Choices each visitor has made before the tests start."""
SMALL_RUN = [
    *TRAIN_OVERRIDES.splitlines(),
    "steps=2",
    "save_every=0",
    "image_every=0",
    "eval.heldout=2",
    "eval.samples=1",
    "eval.bootstrap=50",
    "trackers=[]",
    "progress=false",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run trained for two steps: the model both apps serve."""
    from promptrl.config import load_config
    from promptrl.trainer import PromptTrainer

    out = tmp_path_factory.mktemp("served-run") / "run"
    PromptTrainer(load_config("tiny", None, [*SMALL_RUN, f"output_dir={out}"])).train()
    return out


def serve_app(trained, root, port, shared: bool):
    from promptrl.app import build_app, serve
    from promptrl.prefs.store import PreferenceStore

    store = PreferenceStore(root / "preferences.db", root / "preference-images")
    rate(store, ANN, "ann", seed=1)
    rate(store, BOB, "bob", seed=2)
    store.close()
    demo = build_app(model_dir=str(trained), runs_dir=root, device="cpu", shared_ratings=shared)
    serve(demo, "127.0.0.1", port, auth=USERS, prevent_thread_lock=True, quiet=True)
    return demo


@pytest.fixture(scope="module")
def apps(trained, tmp_path_factory, free_port):
    """{shared: (demo, {user: client})}: one app with `--shared-ratings`, one without."""
    from gradio_client import Client

    served = {}
    try:
        for shared in (False, True):
            port = free_port()
            demo = serve_app(trained, tmp_path_factory.mktemp(f"shared-{shared}"), port, shared)
            url = f"http://127.0.0.1:{port}/"
            served[shared] = (demo, {u: Client(url, auth=(u, pw), verbose=False) for u, pw in USERS})
        yield served
    finally:
        for demo, _ in served.values():
            demo.close()
            demo.rating.close()


def test_a_best_of_four_is_stored_as_its_pairs_and_counts_once(tmp_path):
    from promptrl.app.rating import Round
    from promptrl.prefs.store import Choice, PreferenceStore

    store = PreferenceStore(tmp_path / "preferences.db", tmp_path / "preference-images")
    rng = np.random.default_rng(0)
    hashes = [store.put_image(random_image(rng)) for _ in range(4)]
    shown = Round("idea", ["p0", "p1", "p2", "p3"], [None] * 4, 7, {}, "model", 12)
    rows = shown.rows("c", "ann", hashes, "r1")
    # C (index 2) beats A, B and D; each pair keeps the order shown: (A, C) b, (B, C) b, (C, D) a
    assert [(r.prompt_a, r.prompt_b, r.choice) for r in rows] == [
        ("p0", "p2", "b"),
        ("p1", "p2", "b"),
        ("p2", "p3", "a"),
    ]
    assert {(r.round_id, r.step, r.seed_a) for r in rows} == {("r1", 12, 7)}
    none_good = shown.rows("both_bad", "ann", hashes, "r2")
    assert [(r.prompt_a, r.prompt_b, r.choice) for r in none_good] == [
        ("p0", "p1", "both_bad"),
        ("p2", "p3", "both_bad"),
    ]
    store.add_all(rows)
    store.add(Choice("ann", "idea", "p0", "p1", hashes[0], hashes[1], "a"))
    assert len(store.choices("ann")) == 4 and store.count("ann") == 2 and store.recent("ann", 0) == 2
    pair = Round("idea", ["p0", "p1"], [None] * 2, 7, {}, "model", 12)
    assert [r.round_id for r in pair.rows("tie", "ann", hashes[:2], "r3")] == [""]
    store.close()


def test_asking_where_unsure_keeps_the_closest_scores():
    from promptrl.app.rating import closest

    assert closest([0.0, 0.9, 0.5, 0.55], 2) == [2, 3]
    # of eight, the four within the smallest range: 0.50, 0.52, 0.58, 0.60 (range 0.10)
    assert closest([0.1, 0.5, 0.9, 0.52, 0.3, 0.58, 0.6, 1.5], 4) == [1, 3, 5, 6]


def test_the_next_round_is_made_while_the_rater_looks(tmp_path):
    import threading

    from promptrl.app.limits import Limits
    from promptrl.app.rating import Rating

    rating = Rating(None, Limits(), None, tmp_path)
    rating._ideas = ["a cat", "a dog", "a fox"]
    made = []

    def make_round(idea, shown=2, unsure_head=None):
        made.append((idea, shown, threading.current_thread().name))
        return SimpleNamespace(idea=idea, images=[None] * shown)

    rating.make_round = make_round
    try:
        first_token, first = rating.next_round(None, 2)  # nothing prepared yet: made on the request
        rating.ahead[(None, 2, None)].result()
        second_token, second = rating.next_round(None, 2)  # prepared while the first was looked at
        rating.ahead[(None, 2, None)].result()
        _, four = rating.next_round("a cow", 4)  # another source: its own first round is made now
    finally:
        rating.close()
    assert (first.idea, second.idea, four.idea) == ("a cat", "a dog", "a cow")
    assert made[0] == ("a cat", 2, threading.current_thread().name)
    assert made[1][:2] == ("a dog", 2) and made[1][2].startswith("promptrl-rate")
    assert made[2][:2] == ("a fox", 2) and made[2][2].startswith("promptrl-rate")  # the one after
    assert made[3] == ("a cow", 4, threading.current_thread().name)
    assert first_token != second_token and set(rating.pending) >= {first_token, second_token}


@pytest.mark.slow
def test_four_images_store_the_pairs_the_best_decides_with_the_served_step(apps, trained):
    demo, clients = apps[False]
    bob = clients["bob"]
    token, *images, status = bob.predict("a red barn", False, True, api_name="/rate_next")
    assert all(images) and len(images) == 4, status
    before = len(demo.rating.store.choices("bob"))
    status = bob.predict(token, "a red barn", False, True, api_name="/rate_c")[-1]
    assert f"{BOB + 1} choice(s) by bob." in status
    rows = demo.rating.store.choices("bob")[before:]
    assert [r.choice for r in rows] == ["b", "b", "a"]  # C over A, C over B, C over D
    assert len({r.round_id for r in rows}) == 1 and rows[0].round_id
    assert {r.step for r in rows} == {2} and {r.model for r in rows} == {str(trained / "model")}

    token, a, b, c, d, status = bob.predict("a red barn", False, False, api_name="/rate_next")
    assert a and b and c is None and d is None
    assert "For a pair, choose one of a, b, tie" in bob.predict(token, "", False, False, api_name="/rate_c")[-1]
    bob.predict(token, "", False, False, api_name="/rate_a")  # the refused choice left the pair waiting
    row = demo.rating.store.choices("bob")[-1]
    assert (row.choice, row.step, row.round_id) == ("a", 2, "")


@pytest.mark.slow
@pytest.mark.parametrize("shared", [False, True])
def test_a_visitor_sees_and_fits_everyones_choices_only_when_the_operator_shares_them(apps, shared):
    demo, clients = apps[shared]
    status = clients["ann"].predict("", False, False, api_name="/rate_next")[-1]
    everyone = demo.rating.store.count()
    assert (f"{ANN} choice(s) by ann, {everyone} by everyone" in status) == shared
    assert (f"{ANN} choice(s) by ann." in status) == (not shared)
    reply = clients["ann"].predict(api_name="/rate_fit")
    usable = len([c for c in demo.rating.store.choices(None if shared else "ann") if c.choice != "both_bad"])
    whose = "everyone's " if shared else ""
    assert reply.startswith(f"Fitted on {whose}{usable} pairs"), reply
    assert usable > ANN if shared else usable == ANN


@pytest.mark.slow
def test_train_on_my_reward_starts_a_run_on_the_visitors_fit(apps):
    demo, clients = apps[False]
    ann = clients["ann"]
    if not (demo.rating.reward_dir("ann") / "head.json").exists():
        ann.predict(api_name="/rate_fit")
    reply = ann.predict(2, api_name="/rate_train")
    assert reply.startswith("Started a run of 2 steps"), reply
    deadline = time.time() + 300
    while demo.training.active and time.time() < deadline:
        time.sleep(1)
    assert demo.training.phase == "finished", demo.training.status()
    run = demo.training.output_dir
    terms = yaml.safe_load((run / "config.yaml").read_text())["rewards"]["terms"]
    assert terms == [{"type": "preference", "path": str(demo.rating.reward_dir("ann"))}]
    assert len(demo.training.history) == 2 and "reward/preference/mean" in demo.training.history[-1]
    assert (run / "model" / "promptrl.json").is_file()


def test_the_shared_ratings_flag_reaches_the_app(monkeypatch):
    from promptrl.app import serving

    seen = {}
    stub = SimpleNamespace(training=SimpleNamespace(close=lambda: None), rating=SimpleNamespace(close=lambda: None))
    monkeypatch.setattr(serving, "build_app", lambda *a, **kw: seen.update(kw) or stub)
    monkeypatch.setattr(serving, "serve", lambda *a, **kw: None)
    serving.main([])
    assert seen["shared_ratings"] is False
    serving.main(["--shared-ratings"])
    assert seen["shared_ratings"] is True


def test_an_auth_file_gives_each_visitor_a_line(tmp_path, monkeypatch):
    from promptrl.app.serving import resolve_auth
    from promptrl.errors import UsageError

    monkeypatch.delenv("PROMPTRL_APP_AUTH", raising=False)
    path = tmp_path / "users"
    path.write_text("ann:ann-password\n\nbob:bob-password\n")
    assert resolve_auth(auth_file=str(path)) == USERS
    path.write_text("ann:ann-password\nann:other-password\n")
    with pytest.raises(UsageError, match="names a user twice"):
        resolve_auth(auth_file=str(path))
    path.write_text("ann:ann-password\nbob:short\n")
    with pytest.raises(UsageError, match="line 2: the password must be at least 8"):
        resolve_auth(auth_file=str(path))
