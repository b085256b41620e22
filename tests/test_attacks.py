"""The app as a stranger sees it: served on 127.0.0.1, driven by an unauthenticated client.

Each attack from the review is tried through the public API: read a server file through the
config, import code through a reward spec, write outside the runs dir through a preset or an
output dir, take the machine with huge requests, run code through YAML tags. Each must be
refused with a message saying why, and afterwards nothing outside the runs dir has changed, no
run has started, the secret never came back and the planted module was never imported.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402

import pytest  # noqa: E402

SECRET = "TOPSECRET-7c1f"


def snapshot(root, skip) -> dict:
    """{path: (size, mtime)} of every file and dir under `root`, except under `skip`."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) != str(skip)]
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.stat(path)
            out[path] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def stage(tmp_path_factory, free_port):
    """(client, url, root, runs dir, secret file, marker file): the app on a free port, its runs
    dir inside `root`, a secret file and an importable module that would leave a marker."""
    from gradio_client import Client

    from promptrl.app import build_app, serve

    root = tmp_path_factory.mktemp("stage")
    runs = root / "runs"
    secret = root / "secret.txt"
    secret.write_text(f"{SECRET}\n")
    marker = root / "imported.txt"
    (root / "attack_marker.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\ndef boom(*a): return 0\n")
    sys.path.insert(0, str(root))  # the planted module is importable: only the app's refusal keeps it out
    demo = build_app("tiny", runs_dir=runs, device="cpu", preload=False)
    port = free_port()
    serve(demo, "127.0.0.1", port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        yield Client(url, verbose=False), url, root, runs, secret, marker
    finally:
        demo.close()
        sys.path.remove(str(root))


def upload(root, name: str, text: str):
    from gradio_client import handle_file

    path = root / "client-side" / name  # the visitor's own file, uploaded through the API
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return handle_file(str(path))


TRAIN_ATTACKS = {
    # name: (preset, yaml text or None, overrides, steps, expected words in the refusal)
    "an algorithm that names code": ("tiny", None, "algorithm=attack_marker:run", 0, "algorithm must be one of"),
    "a GRPO key out of range": ("tiny", None, "grpo.num_iterations=1000", 0, "grpo.num_iterations must be between"),
    "read a file via ideas": ("tiny", None, "ideas={secret}", 0, "'ideas' names a server file"),
    "read a file via uploaded YAML": (
        "tiny",
        "ideas: {secret}\n",
        "",
        0,
        "'ideas' names a server file",
    ),
    "read a file via the SFT corpus": (
        "tiny",
        None,
        "sft.corpus={secret}",
        0,
        "'sft.corpus' names a server file",
    ),
    "call code via a reward spec": (
        "tiny",
        None,
        "rewards.terms=[{{type: callable, fn: 'attack_marker:boom'}}]",
        0,
        "'rewards.terms' can name code",
    ),
    "call code via uploaded YAML": (
        "tiny",
        "rewards:\n  terms:\n    - {{type: callable, fn: 'attack_marker:boom'}}\n",
        "",
        0,
        "'rewards.terms' can name code",
    ),
    "unpickle via aesthetic weights": (
        "tiny",
        None,
        "rewards.aesthetic_weights={secret}",
        0,
        "names a weights file",
    ),
    "load another model": ("tiny", None, "policy.model={root}", 0, "'policy.model' names a model"),
    "load another pipeline": (
        "tiny",
        None,
        "render.pipeline={root}",
        0,
        "'render.pipeline' names a model",
    ),
    "write via output_dir": (
        "tiny",
        None,
        "output_dir={root}/pwned",
        0,
        "'output_dir' names a server directory",
    ),
    "write via a path-like preset": ("../../pwned", None, "", 0, "not in the list of choices"),
    "write via a YAML preset": (
        "tiny",
        "preset: ../../pwned\n",
        "",
        0,
        "not one of the named presets",
    ),
    "write via a preset override": (
        "tiny",
        None,
        "preset=../pwned",
        0,
        "not one of the named presets",
    ),
    "run code via a YAML tag": (
        "tiny",
        "steps: !!python/object/apply:os.system ['touch {root}/tagged']\n",
        "",
        0,
        "not valid YAML",
    ),
    "run code via an override tag": (
        "tiny",
        None,
        "steps=!!python/object/apply:os.system ['touch {root}/tagged']",
        0,
        "could not read the value",
    ),
    "huge steps": ("tiny", None, "", 10**9, "between 1 and 500"),
    "huge steps in YAML": ("tiny", "steps: 100000000\n", "", 0, "between 1 and 500"),
    "huge batch": ("tiny", None, "ppo.batch_size=100000", 0, "between 1 and 64"),
    "huge images": (
        "tiny",
        None,
        "render.height=8192",
        0,
        "'render.height' is not among the settings",
    ),
    "many denoising steps": ("tiny", None, "render.num_inference_steps=1000", 0, "between 1 and 8"),
    "NaN learning rate": ("tiny", None, "ppo.lr=.nan", 0, "ppo.lr must be between"),
}


@pytest.mark.parametrize("attack", list(TRAIN_ATTACKS))
def test_train_tab_refuses(stage, attack):
    from gradio_client.exceptions import AppError

    client, _, root, runs, secret, marker = stage
    preset, yaml_text, overrides, steps, expected = TRAIN_ATTACKS[attack]
    fill = dict(secret=secret, root=root)
    config = upload(root, "attack.yaml", yaml_text.format(**fill)) if yaml_text else None
    before = snapshot(root, runs)
    try:
        reply = client.predict(
            preset,
            config,
            None,
            steps,
            1.0,
            1.0,
            1.0,
            overrides.format(**fill),
            api_name="/train_start",
        )[1]
    except AppError as err:  # gradio's own check of a dropdown value comes first
        reply = f"⚠️ {err}"
    assert reply.startswith("⚠️") and expected in reply, reply
    assert reply.count("\n") == 0 and SECRET not in reply
    assert snapshot(root, runs) == before  # nothing written (or touched) outside the runs dir
    assert not runs.exists() or not [p for p in runs.iterdir() if not p.name.startswith(".")]  # no run started
    assert not marker.exists() and "attack_marker" not in sys.modules
    assert client.predict(api_name="/train_poll")[0] == "**Training:** idle"


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("too many ideas", "\n".join(f"idea {i}" for i in range(2001)), "too many"),
        ("an overlong idea", "x" * 5000, "characters long"),
        ("binary junk", "\udcff", "UTF-8"),
    ],
)
def test_ideas_uploads_are_bounded(stage, name, text, expected):
    client, _, root, runs, *_ = stage
    path = root / "client-side" / "ideas.txt"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    from gradio_client import handle_file

    reply = client.predict("tiny", None, handle_file(str(path)), 0, 1.0, 1.0, 1.0, "", api_name="/train_start")[1]
    assert reply.startswith("⚠️") and expected in reply, reply
    assert not runs.exists() or not [p for p in runs.iterdir() if not p.name.startswith(".")]


def test_an_upload_over_the_size_limit_is_refused(stage):
    client, _, root, *_ = stage
    big = upload(root, "big.txt", "a cat\n" * 200_000)  # 1.2 MB; the limit is 1 MB
    try:
        reply = client.predict("tiny", None, big, 0, 1.0, 1.0, 1.0, "", api_name="/train_start")[1]
    except Exception as err:  # gradio turns the upload away itself (max_file_size)
        reply = f"⚠️ {err}"
    assert reply.startswith("⚠️") and ("bytes" in reply or "size" in reply.lower()), reply


def test_a_server_path_posed_as_an_upload_is_refused(stage):
    """Raw HTTP, as a script would send it: a FileData naming a server path instead of an upload."""
    _, url, root, runs, secret, _ = stage
    fake = {"path": str(secret), "meta": {"_type": "gradio.FileData"}, "orig_name": "ideas.txt"}
    body = json.dumps({"data": ["tiny", None, fake, 0, 1.0, 1.0, 1.0, ""]}).encode()
    request = urllib.request.Request(
        f"{url}gradio_api/call/train_start", data=body, headers={"Content-Type": "application/json"}
    )
    event = json.loads(urllib.request.urlopen(request).read())["event_id"]
    stream = urllib.request.urlopen(f"{url}gradio_api/call/train_start/{event}").read().decode()
    assert "event: error" in stream and SECRET not in stream
    with pytest.raises(urllib.error.HTTPError) as info:  # nor can the file route read it
        urllib.request.urlopen(f"{url}gradio_api/file={secret}")
    assert info.value.code == 403
    assert not runs.exists() or not [p for p in runs.iterdir() if not p.name.startswith(".")]


def test_generate_refuses_a_megabyte_idea_and_ten_thousand_ideas(stage):
    client, *_ = stage
    for ideas, expected in (("x" * 1_000_000, "characters long"), ("a\n" * 10_000, "too many")):
        status = client.predict(ideas, 1, 1.0, 1.0, 8, 0, api_name="/generate")[-1]
        assert status.startswith("⚠️") and expected in status


def test_credentials_are_enforced_when_given(tmp_path, free_port):
    from gradio_client import Client

    from promptrl.app import build_app, serve

    demo = build_app("tiny", runs_dir=tmp_path / "runs", device="cpu", preload=False)
    port = free_port()
    serve(
        demo,
        "127.0.0.1",
        port,
        auth=("visitor", "correct-horse"),
        prevent_thread_lock=True,
        quiet=True,
    )
    try:
        for path in ("gradio_api/info", "config"):
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}")
            assert info.value.code == 401
        with pytest.raises(Exception):  # noqa: B017 (the client's error type varies with the refusal)
            Client(f"http://127.0.0.1:{port}/", verbose=False)
        authed = Client(f"http://127.0.0.1:{port}/", auth=("visitor", "correct-horse"), verbose=False)
        assert authed.predict(api_name="/train_poll")[0] == "**Training:** idle"
    finally:
        demo.close()


@pytest.mark.parametrize("argv", [["--host", "0.0.0.0"], ["--share"], ["--host", "192.168.1.5", "--port", "7999"]])
def test_serving_beyond_loopback_without_credentials_refuses_to_start(argv, capsys, monkeypatch):
    from promptrl.app import main

    monkeypatch.delenv("PROMPTRL_APP_AUTH", raising=False)
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.count("\n") == 0 and "--auth user:password" in err and "PROMPTRL_APP_AUTH" in err and "--auth-file" in err
    )


def test_credentials_come_from_a_flag_a_file_or_the_environment(tmp_path, monkeypatch):
    from promptrl.app.serving import check_exposure, resolve_auth

    monkeypatch.delenv("PROMPTRL_APP_AUTH", raising=False)
    assert resolve_auth() is None
    check_exposure("127.0.0.1", False, None)  # loopback alone needs none
    assert resolve_auth("ann:long-enough") == ("ann", "long-enough")
    (tmp_path / "pw").write_text("bob:from-a-file\n")
    assert resolve_auth(auth_file=str(tmp_path / "pw")) == ("bob", "from-a-file")
    monkeypatch.setenv("PROMPTRL_APP_AUTH", "cy:from-the-env")
    assert resolve_auth() == ("cy", "from-the-env")
    check_exposure("0.0.0.0", True, resolve_auth())
    for bad in ("nopassword", "ann:short", ":nouser-here"):
        with pytest.raises(ValueError, match="user:password|8 characters"):
            resolve_auth(bad)


def test_a_user_name_cannot_lead_a_rater_s_files_out_of_the_runs_dir(tmp_path):
    """A login name names the folder of that visitor's fitted reward: one plain name only."""
    from promptrl.app.serving import resolve_auth
    from promptrl.rundir import preference_reward_dir

    for name in ("..", "/srv/x", "a/b", "bob ", "é", "-dash"):
        with pytest.raises(ValueError, match="user names are 1-64 letters"):
            resolve_auth(f"{name}:long-enough")
    assert resolve_auth("ann.b@x-1:long-enough")[0] == "ann.b@x-1"
    db = tmp_path / "runs" / "preferences.db"
    assert preference_reward_dir(db, "ann") == tmp_path / "runs" / "my-reward" / "ann"
    for name in ("..", ".", "", "/srv/x", "a/b", "..\\x"):
        with pytest.raises(ValueError, match="cannot name a folder"):
            preference_reward_dir(db, name)


def test_the_app_leaves_no_temp_dirs_behind(tmp_path):
    """Download zips live in `<runs dir>/.downloads`, not in /tmp dirs nobody removes."""
    import glob
    import tempfile

    from promptrl.app import build_app

    pattern = os.path.join(tempfile.gettempdir(), "promptrl-app-*")
    before = set(glob.glob(pattern))
    demo = build_app("tiny", runs_dir=tmp_path / "runs", device="cpu", preload=False)
    assert set(glob.glob(pattern)) == before
    assert demo.training.download_dir == (tmp_path / "runs" / ".downloads").resolve()
    demo.training.download_dir.mkdir(parents=True)
    demo.training.close()
    assert not demo.training.download_dir.exists()


def test_a_bug_in_a_handler_shows_no_details_to_the_visitor(caplog):
    """promptrl's own refusals are shown as they are; any other exception's text (it may hold a
    server path) goes to the server's log only."""
    from promptrl.app.limits import UserError, friendly
    from promptrl.rewards import RewardError

    @friendly(2)
    def handler(error):
        raise error

    assert handler(UserError("Type at least one idea."))[1] == "⚠️ Type at least one idea."
    assert handler(RewardError("reward 'mine' returned 3 values"))[1] == "⚠️ reward 'mine' returned 3 values"
    with caplog.at_level(logging.ERROR, logger="promptrl"):
        table, status = handler(KeyError("/srv/secret/weights.bin"))
    assert "secret" not in status and status.startswith("⚠️ Something went wrong") and table is not None
    assert "/srv/secret/weights.bin" in caplog.text  # the operator still sees it
