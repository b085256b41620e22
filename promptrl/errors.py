"""The errors promptrl raises on purpose. Each message says what was wrong and what to do.

The command line prints these as one line and the app shows them to the visitor; any other
exception is a bug, so the command line shows its traceback and the app a generic message (the
details go to the server's log). A leaf module: every layer can raise them.

They subclass the built-in error a caller would expect (`ValueError`, `FileNotFoundError`), so
`except ValueError` keeps working in code written against earlier releases.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class PromptrlError(Exception):
    """Base of every error promptrl raises on purpose."""


class UsageError(PromptrlError, ValueError):
    """Input promptrl refuses: a config value, an argument, the content of a file."""


class NotFoundError(PromptrlError, FileNotFoundError):
    """A file, directory or model that does not exist or cannot be loaded."""


@contextlib.contextmanager
def loading(what: str, name: object) -> Iterator[None]:
    """Turn the errors the hub libraries raise while loading `name` (an `OSError`: a hub name
    offline, a directory without weights; an invalid repository id) into a `NotFoundError` that
    names what was being loaded."""
    from huggingface_hub.errors import HFValidationError

    try:
        yield
    except PromptrlError:
        raise
    except (OSError, HFValidationError) as err:
        raise NotFoundError(f"{what} {str(name)!r} could not be loaded: {err}") from err
