"""The ideas a run trains on: from a list, a text file, the bundled set or a `datasets` dataset."""

from __future__ import annotations

from pathlib import Path

from .errors import NotFoundError, UsageError

BUNDLED_IDEAS = Path(__file__).parent / "data" / "ideas.txt"
MAX_IDEA_CHARS = 1000
"""Characters per idea: an idea is a short seed; a longer one cannot fit the model's context."""


def load_ideas(source) -> list[str]:
    """Ideas from a list, a text file (one per line), 'bundled', or a `datasets` dataset.

    A dataset (object, or `hf:<name>[:<column>]`) uses its `idea` column, else its first string
    column.
    """
    if isinstance(source, (list, tuple)):
        ideas = [str(s).strip() for s in source]
    elif hasattr(source, "column_names"):
        ideas = _dataset_column(source)
    elif isinstance(source, str) and source.startswith("hf:"):
        import datasets

        _, name, *column = source.split(":")
        ds = datasets.load_dataset(name, split="train")
        ideas = [str(x).strip() for x in ds[column[0]]] if column else _dataset_column(ds)
    else:
        path = BUNDLED_IDEAS if source == "bundled" else Path(source)
        if not path.exists():
            raise NotFoundError(f"Ideas file {path} does not exist; pass a text file with one idea per line.")
        ideas = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    ideas = [i for i in ideas if i]
    if not ideas:
        raise UsageError("No ideas to train on: the ideas source is empty.")
    longest = max(ideas, key=len)
    if len(longest) > MAX_IDEA_CHARS:
        raise UsageError(
            f"An idea is {len(longest)} characters long ({longest[:40]!r}...); ideas must be at most "
            f"{MAX_IDEA_CHARS} characters: a short seed, the model writes the prompt."
        )
    return ideas


def _dataset_column(ds) -> list[str]:
    names = ds.column_names
    column = "idea" if "idea" in names else next((c for c in names if isinstance(ds[0][c], str)), None)
    if column is None:
        raise UsageError(f"The dataset has no text column (columns: {names}); name one with hf:<name>:<column>.")
    return [str(x).strip() for x in ds[column]]
