"""The notebooks: committed without outputs, and run top to bottom in their offline tiny mode.

Each notebook is executed with nbclient in the kernel of the Python running the tests, with
its parameters injected after the cell tagged `parameters` (as papermill does), in a temporary
working directory. A notebook passes if no cell raises and the reward it reports on its
`REWARD_RISE {...}` line rose during training.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["promptrl_colab.ipynb", "sentiment_gpt2.ipynb"]
TINY = {
    "promptrl_colab.ipynb": {"MODE": "tiny", "LAUNCH_APP": True, "PUSH_TO_HUB": False},
    "sentiment_gpt2.ipynb": {"MODE": "tiny"},
}
# The app cell builds the real app; only `launch` is replaced, so no server starts.
NO_SERVER = """\
import gradio as _gradio
_gradio.Blocks.launch = lambda self, *args, **kwargs: print("APP_LAUNCH", json.dumps(kwargs))
"""
EXTRA = {"promptrl_colab.ipynb": "import json\n" + NO_SERVER, "sentiment_gpt2.ipynb": ""}
RISES = {
    # Mean training reward of the first and last steps. The before/after comparison of the
    # colab notebook (four prompts) is too noisy to assert on; the sentiment one has 64.
    "promptrl_colab.ipynb": [("first", "last")],
    "sentiment_gpt2.ipynb": [("first", "last"), ("before", "after")],
}


def load(name: str):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    return nb


def inject(nb, params: dict, code: str = "") -> None:
    """Insert a cell assigning `params` (then running `code`) after the `parameters` cell; it
    also prints the kernel's Python prefix, to check which environment runs the notebook."""
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    lines = [f"{key} = {value!r}" for key, value in params.items()]
    lines += ["import sys as _sys", "print('KERNEL_PREFIX', _sys.prefix)", code]
    cell = nbformat.v4.new_code_cell("\n".join(lines).strip(), id="injected-parameters")
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(index + 1, cell)


def printed(nb, tag: str) -> list[str]:
    """The rest of every printed line that starts with `tag `."""
    out = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                out += [line[len(tag) + 1 :] for line in output["text"].splitlines() if line.startswith(tag + " ")]
    return out


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_committed_clean(name):
    nb = load(name)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: strip the outputs"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "MODE = " in tagged[0].source


def test_the_committed_notebooks_are_what_the_builder_writes():
    """The cells are edited in build_notebooks.py; a notebook edited by hand (or a builder
    edited without rebuilding) would drift from it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_notebooks", NOTEBOOKS / "build_notebooks.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    assert sorted(builder.NOTEBOOKS) == sorted(NAMES)
    for name, cells in builder.NOTEBOOKS.items():
        committed = [(c.id, c.cell_type, c.source) for c in load(name).cells]
        assert committed == [(c.id, c.cell_type, c.source) for c in builder.notebook(cells, name).cells], (
            f"{name} differs from what notebooks/build_notebooks.py writes: run it"
        )


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_in_tiny_mode_and_reward_rises(name, tmp_path, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("PROMPTRL_CACHE", str(tmp_path_factory.getbasetemp() / "promptrl-cache"))
    # Two threads on two shared cores can be many times slower than one for these tiny models.
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    nb = load(name)
    inject(nb, TINY[name], EXTRA[name])
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    start = time.perf_counter()
    try:
        client.execute()
    finally:
        nbformat.write(nb, tmp_path / f"executed-{name}")  # to read when something fails
    seconds = time.perf_counter() - start

    assert printed(nb, "KERNEL_PREFIX") == [sys.prefix], "the notebook ran in another Python environment"
    lines = printed(nb, "REWARD_RISE")
    assert len(lines) == 1, f"{name} printed no REWARD_RISE line"
    rise = json.loads(lines[0])
    print(f"{name}: {seconds:.0f} s, {rise}")
    if TINY[name].get("LAUNCH_APP"):
        launches = [json.loads(line) for line in printed(nb, "APP_LAUNCH")]
        assert len(launches) == 1, "the app cell did not launch the app"
        assert launches[0]["share"] is False and launches[0]["server_name"] == "127.0.0.1"  # no public link
    for before, after in RISES[name]:
        assert rise[after] > rise[before], f"{name}: reward did not rise from {before!r} to {after!r}: {rise}"
