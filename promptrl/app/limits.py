"""Server-side bounds of the app and the checks of visitor input against them.

Every request is checked here before any work starts; a refusal is a `UserError` whose message
says what to send instead. The operator raises a bound with `app.py --limit NAME=VALUE`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from ..errors import PromptrlError, UsageError

logger = logging.getLogger("promptrl")


@dataclass(frozen=True)
class Limits:
    ideas: int = 16
    """Ideas per Generate request."""
    idea_chars: int = 200
    """Characters per idea: ideas are short seeds, the model writes the prompt."""
    prompts_per_idea: int = 8
    """Prompts sampled per idea and model."""
    new_tokens: int = 128
    """Tokens per generated prompt (Stable Diffusion reads at most 77 anyway)."""
    render_rows: int = 16
    """Table rows rendered per request (two images each: fine-tuned and starting model)."""
    eval_samples: int = 4
    """Prompts per idea and model in an Evaluate request (each rendered and scored)."""
    prompt_chars: int = 1000
    """Characters per table cell sent to Render & score."""
    train_steps: int = 500
    """PPO steps of a run started from the Train tab."""
    train_batch: int = 64
    """Batch sizes (PPO and SFT) a visitor may choose."""
    train_ideas: int = 2000
    """Lines in an uploaded ideas file."""
    render_steps: int = 8
    """Denoising steps a visitor may choose for training."""
    upload_bytes: int = 1_000_000
    """Size of one uploaded file (ideas or config YAML)."""
    queue_size: int = 64
    """Requests waiting in the queue; more are turned away by gradio."""
    ratings_per_minute: int = 60
    """Choices one rater may record a minute in the Rate tab."""
    prefs_mb: int = 1024
    """Size of the rating store (database and its journal) past which no choice is recorded."""

    @classmethod
    def from_pairs(cls, pairs: list[str]) -> Limits:
        """`["train_steps=2000", ...]` (the `--limit` flags) over the defaults."""
        names = [f.name for f in dataclasses.fields(cls)]
        values = {}
        for pair in pairs:
            name, _, raw = pair.partition("=")
            if name not in names:
                raise UsageError(f"--limit {pair}: unknown limit {name!r}; known: {', '.join(names)}.")
            if not raw.isdigit() or int(raw) < 1:
                raise UsageError(f"--limit {pair}: the value must be a positive whole number.")
            values[name] = int(raw)
        return cls(**values)


class UserError(UsageError):
    """Input the app refuses, with a message that says what to do instead."""


def friendly(n_outputs: int) -> Callable:
    """Wrap a UI handler with `n_outputs` outputs, the last a status Markdown: on failure, show the
    message there (and as a `gr.Warning`) and leave the other outputs as they are.

    promptrl's own errors (bad input, a failing reward, a missing file) show their message;
    anything else is a bug: its traceback goes to the server's log, and the visitor sees only
    that something went wrong (an exception's text may hold server paths).
    """

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def handler(*args):
            try:
                return fn(*args)
            except PromptrlError as err:
                message = str(err)
            except Exception:
                logger.exception("app handler %s failed", fn.__name__)
                message = "Something went wrong (the server's log has the details). The app is still running."
            gr.Warning(message)
            if n_outputs == 1:
                return f"⚠️ {message}"
            return (*[gr.skip()] * (n_outputs - 1), f"⚠️ {message}")

        return handler

    return wrap


def parse_ideas(text: str | None, limits: Limits, max_ideas: int | None = None, what: str = "request") -> list[str]:
    """Non-blank lines of `text`, within the limits."""
    max_ideas = max_ideas or limits.ideas
    ideas = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not ideas:
        raise UserError("Type at least one idea, one per line (e.g. 'a lighthouse in a storm').")
    if len(ideas) > max_ideas:
        raise UserError(f"{len(ideas)} ideas is too many: at most {max_ideas} per {what}.")
    for i, idea in enumerate(ideas, 1):
        if len(idea) > limits.idea_chars:
            raise UserError(
                f"Idea {i} is {len(idea)} characters long; keep ideas under "
                f"{limits.idea_chars} characters: a short idea, the model writes the prompt."
            )
    return ideas


def upload_text(data: bytes | None, limits: Limits, what: str) -> str | None:
    """An uploaded file's bytes as text, read in memory and bounded (never a server path)."""
    if data is None:
        return None
    if not isinstance(data, bytes):
        raise UserError(f"The {what} must be uploaded as a file.")
    if len(data) > limits.upload_bytes:
        raise UserError(f"The {what} is {len(data):,} bytes; at most {limits.upload_bytes:,} are accepted.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"The {what} is not UTF-8 text.") from None


def number(value, name: str, low: float, high: float, integer: bool = False) -> float | int:
    """`value` as a number in [low, high], else a UserError naming the control."""
    if isinstance(value, bool):
        raise UserError(f"{name} must be a number, got {value!r}.")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number, got {value!r}.") from None
    if not low <= x <= high:  # also refuses NaN
        raise UserError(f"{name} must be between {low:g} and {high:g}, got {x:g}.")
    if integer:
        if not x.is_integer():
            raise UserError(f"{name} must be a whole number, got {x:g}.")
        return int(x)
    return x


def parse_rows(text: str | None, n_rows: int, limits: Limits) -> list[int]:
    """0-based row indexes from '1,3-4' (1-based, inclusive); blank means every row."""
    if not (text or "").strip():
        rows = list(range(n_rows))
    else:
        rows = []
        for part in text.replace(" ", "").split(","):
            match = re.fullmatch(r"(\d{1,6})(?:-(\d{1,6}))?", part)
            if not match:
                raise UserError(f"Rows look like '1,3-4'; could not read {part[:20]!r}.")
            first, last = int(match.group(1)), int(match.group(2) or match.group(1))
            if not 1 <= first <= last <= n_rows:
                raise UserError(f"Row range {part} is outside the table's rows 1-{n_rows}.")
            rows.extend(r - 1 for r in range(first, last + 1) if r - 1 not in rows)
    if len(rows) > limits.render_rows:
        raise UserError(
            f"{len(rows)} rows is too many to render at once: pick at most "
            f"{limits.render_rows} (e.g. '1-{limits.render_rows}')."
        )
    return rows


def table_text(cell, what: str, limits: Limits) -> str:
    """A table cell as text ('' for an empty one), refused past the prompt length limit."""
    text = "" if cell is None or pd.isna(cell) else str(cell).strip()
    if len(text) > limits.prompt_chars:
        raise UserError(
            f"{what} in the table is {len(text)} characters long; keep it under "
            f"{limits.prompt_chars} (Stable Diffusion reads 77 tokens at most)."
        )
    return text
