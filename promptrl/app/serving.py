"""Serving the app: who may connect, and the command line behind `python app.py` / `promptrl app`.

On loopback (127.0.0.1, localhost, ::1) without `share`, only this machine can connect and no
password is needed. Anything else (`--host 0.0.0.0`, a public `--share` link) serves strangers,
so it needs credentials: `--auth user:password`, the `PROMPTRL_APP_AUTH` environment variable
(same form), or `--auth-file` (a file of `user:password` lines, one per visitor: the Rate tab
keeps each user's choices apart).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from pathlib import Path

import gradio as gr

from .. import logs
from ..errors import PromptrlError, UsageError
from ..presets import DEFAULT_PRESET, PRESETS, add_config_arguments
from .build import build_app
from .limits import Limits
from .rate_tab import SHORTCUTS

AUTH_ENV = "PROMPTRL_APP_AUTH"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
HOW_TO_AUTH = f"pass --auth user:password, set {AUTH_ENV}=user:password, or --auth-file FILE (user:password lines)"

Credentials = tuple[str, str] | list[tuple[str, str]]
"""`(user, password)`, or a list of them (one per visitor: the Rate tab keeps each one's choices apart)."""


USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def parse_auth(text: str, where: str) -> tuple[str, str]:
    user, sep, password = text.strip().partition(":")
    if not sep or not user or not password:
        raise UsageError(f"{where} must look like user:password.")
    if not USER_NAME.fullmatch(user):
        raise UsageError(
            f"{where}: user names are 1-64 letters, digits and . _ @ - (starting with a letter or digit): "
            "each names the folder of that visitor's fitted reward."
        )
    if len(password) < 8:
        raise UsageError(f"{where}: the password must be at least 8 characters long.")
    return user, password


def resolve_auth(auth: str | None = None, auth_file: str | None = None) -> Credentials | None:
    """Credentials from the flag, else the file (one pair per non-blank line: a list when there
    are several), else the environment; None when none is given."""
    if auth:
        return parse_auth(auth, "--auth")
    if auth_file:
        path = Path(auth_file)
        if not path.is_file():
            raise UsageError(f"--auth-file {auth_file} does not exist.")
        lines = [line for line in path.read_text().splitlines() if line.strip()] or [""]
        found = [parse_auth(line, f"--auth-file {auth_file} line {n}") for n, line in enumerate(lines, 1)]
        users = [user for user, _ in found]
        if len(set(users)) < len(users):
            raise UsageError(f"--auth-file {auth_file} names a user twice: one line per user.")
        return found[0] if len(found) == 1 else found
    if os.environ.get(AUTH_ENV):
        return parse_auth(os.environ[AUTH_ENV], AUTH_ENV)
    return None


def check_exposure(host: str, share: bool, auth: Credentials | None) -> None:
    """Refuse to serve beyond this machine without credentials."""
    if not auth and (share or host not in LOOPBACK):
        where = "a public share link" if share else f"{host} (reachable from other machines)"
        raise UsageError(f"Refusing to serve on {where} without a password: {HOW_TO_AUTH}.")


def generated_auth(user: str = "promptrl") -> tuple[str, str]:
    """A fresh random password, for the notebook's share option."""
    return user, secrets.token_urlsafe(12)


def serve(
    demo: gr.Blocks,
    host: str = "127.0.0.1",
    port: int | None = None,
    share: bool = False,
    auth: Credentials | None = None,
    **launch_kwargs,
):
    """`demo.launch` with the app's rules: credentials beyond loopback, the upload size limit, and
    the download dir (inside the runs dir) as the only extra path gradio may serve files from."""
    check_exposure(host, share, auth)
    limits = getattr(demo, "limits", Limits())
    training = getattr(demo, "training", None)
    allowed = [str(training.download_dir)] if training is not None else []
    launch_kwargs.setdefault("head", SHORTCUTS)  # the Rate tab's keys
    return demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        auth=auth,
        max_file_size=limits.upload_bytes,
        allowed_paths=allowed,
        **launch_kwargs,
    )


def main(argv: list[str] | None = None) -> None:
    """`python app.py [--preset tiny] [--model DIR] [--share --auth user:pw] [--host H] [--port N]`."""
    p = argparse.ArgumentParser(prog="app.py", description="Serve the promptrl Gradio app.")
    add_config_arguments(
        p,
        f"named config: {', '.join(PRESETS)} (tiny: offline, CPU; default: {DEFAULT_PRESET}, "
        "or the one --config or the run's config.yaml names)",
        "YAML config (on top of the preset it names, else of the full-size defaults)",
        example="render.num_inference_steps=4",
    )
    p.add_argument(
        "--model",
        default=None,
        help="fine-tuned generator: model dir, checkpoint or promptrl run dir",
    )
    p.add_argument("--base", default=None, help="starting model to compare with (default: found from the run)")
    p.add_argument("--device", default=None, help="device of the app's models (default: cuda if available)")
    p.add_argument("--runs-dir", default="runs/app", help="where training runs started in the app write")
    p.add_argument(
        "--prefs-db", default=None, help="the Rate tab's rating store (default: preferences.db in --runs-dir)"
    )
    p.add_argument(
        "--shared-ratings",
        action="store_true",
        help="the Rate tab shows every visitor everyone's count of choices and fits on everyone's choices "
        "(default: each visitor sees and fits only their own)",
    )
    p.add_argument("--concurrency", type=int, default=4, help="requests served at once per event")
    p.add_argument(
        "--limit",
        dest="limits",
        action="append",
        default=[],
        metavar="NAME=N",
        help=f"raise a server-side bound, e.g. --limit train_steps=2000 (names: "
        f"{', '.join(Limits.__dataclass_fields__)})",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to serve on (0.0.0.0: every interface; needs --auth)",
    )
    p.add_argument("--port", type=int, default=7860, help="port to serve on")
    p.add_argument("--share", action="store_true", help="public gradio.live link (needs --auth)")
    p.add_argument("--auth", default=None, metavar="USER:PASSWORD", help=f"credentials (or set {AUTH_ENV})")
    p.add_argument("--auth-file", default=None, help="file of user:password lines, one per visitor")
    args = p.parse_args(argv)
    with logs.configure():  # promptrl's messages and the libraries' warnings; no INFO chatter
        _serve_from_args(args)


def _serve_from_args(args: argparse.Namespace) -> None:
    try:  # every check that can refuse runs before the models load
        auth = resolve_auth(args.auth, args.auth_file)
        check_exposure(args.host, args.share, auth)
        limits = Limits.from_pairs(args.limits)
        demo = build_app(
            args.preset,
            args.model,
            args.base,
            args.config,
            args.overrides,
            args.device,
            args.runs_dir,
            concurrency=args.concurrency,
            limits=limits,
            prefs_db=args.prefs_db,
            shared_ratings=args.shared_ratings,
        )
    except PromptrlError as err:  # the operator's flags or files; anything else is a bug: its traceback
        print(f"app.py: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        serve(demo, args.host, args.port, args.share, auth)
    finally:
        demo.training.close()
        demo.rating.close()
