"""Field checks for the config dataclasses' `__post_init__`: one-line errors naming the key, the
value and what is allowed. A leaf module, so every config section can use it without import circles.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing

from .errors import UsageError


def _allowed(hint) -> str:
    names = {
        int: "an integer",
        float: "a number",
        bool: "true or false",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }
    origin = typing.get_origin(hint) or hint
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _allowed(a) for a in typing.get_args(hint))
    return names.get(origin, getattr(origin, "__name__", str(origin)))


def _fits(value, hint) -> bool:
    origin = typing.get_origin(hint) or hint
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is bool:
        return isinstance(value, bool)
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if origin in (list, dict, str):
        return isinstance(value, origin)
    return True


def check_types(obj, section: str) -> None:
    """Every field of dataclass `obj` holds its annotated type (no bool for an int, no NaN or
    infinity for a number)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            continue
        if not _fits(value, hints[f.name]):
            raise UsageError(f"config key '{key(section, f.name)}' must be {_allowed(hints[f.name])}, got {value!r}.")


def key(section: str, name: str) -> str:
    return f"{section}.{name}" if section else name


def at_least(section: str, name: str, value, low, high=None) -> None:
    """`low <= value (<= high)`, else an error naming the key."""
    if value < low or (high is not None and value > high):
        allowed = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise UsageError(f"config key '{key(section, name)}' must be {allowed}, got {value!r}.")


def positive(section: str, name: str, value) -> None:
    if value <= 0:
        raise UsageError(f"config key '{key(section, name)}' must be positive, got {value!r}.")


def one_of(section: str, name: str, value, choices) -> None:
    if value not in choices:
        raise UsageError(
            f"config key '{key(section, name)}' must be one of {', '.join(map(repr, choices))}, got {value!r}."
        )


def not_blank(section: str, name: str, value: str | None) -> None:
    if value is not None and not value.strip():
        raise UsageError(f"config key '{key(section, name)}' must not be empty.")
