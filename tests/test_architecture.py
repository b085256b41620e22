"""The package's shape: no import circles between its modules, and no module too long to read."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "promptrl"
MAX_LINES = 400
LONG_MODULES = {
    "ppo/trainer.py": "PPOTrainer, one algorithm read top to bottom (set-up, rollout pass, rewards, step, epochs, "
    "minibatch); its inputs are batch.py's, its statistics stats.py's, its loss core.ppo_loss",
    "rundir.py": "a run on disk, the one owner of its file names: the layout, checkpoints, and the Run that reads "
    "and writes them; the state codec (state.py) and atomic writes (paths.py) live apart",
    "trainer.py": "PromptTrainer, the loop read top to bottom (set-up, step, train, checkpoints, held-out judge, "
    "final artefacts); ideas, seeds, the rollback guard, plots and the run-dir layout have modules of their own",
}
"""Modules allowed over MAX_LINES for now, each with the reason."""


def module_names() -> dict[str, Path]:
    """`promptrl.x.y` -> its file, for every module of the package (packages by `__init__.py`)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imported_modules(name: str, path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `name` imports anywhere in its file: at module level, in
    functions (deferred imports) and under `if TYPE_CHECKING`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from . import rundir` imports the module promptrl.rundir; `from .x import f`, promptrl.x
            submodules = [f"{source}.{alias.name}" for alias in node.names]
            targets = [m for m in submodules if m in modules] or [source]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as `[a, b, ..., a]`, or None when the graph has none."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imported_modules(name, path, set(modules)) for name, path in modules.items()}


def test_find_cycle_names_the_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_every_kind_of_import():
    graph = import_graph()
    assert "promptrl.rundir" in graph["promptrl.trainer"]  # from . import rundir
    assert "promptrl.config" in graph["promptrl.sft"]  # from .config import SFTConfig
    assert "promptrl.app.limits" in graph["promptrl.app.model_cache"]  # from .limits import ...
    assert "promptrl.config" in graph["promptrl.app.model_cache"]  # from ..config import ...
    assert "promptrl.ppo.core" in graph["promptrl.ppo.trainer"]  # from .core import (...)
    assert "promptrl.eval.evaluate" in graph["promptrl.cli"]  # inside a function


def test_no_import_circles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


LEAVES = {
    "promptrl.checks",
    "promptrl.devices",
    "promptrl.errors",
    "promptrl.paths",
    "promptrl.seeds",
    "promptrl.timing",
}
"""Modules that import nothing from promptrl but each other: any layer may use them."""
ALLOWED = {
    "promptrl.ppo": {"promptrl.ppo"},
    "promptrl.rewards": {"promptrl.rewards"},
    "promptrl.standins": {"promptrl.standins", "promptrl.rewards", "promptrl.ppo"},
}
"""What each product's subpackage may import besides the leaves: the PPO library knows nothing
of images, the rewards nothing of PPO or rendering."""


def test_subpackages_import_only_what_their_product_needs():
    graph = import_graph()
    for name, targets in graph.items():
        if name in LEAVES:
            assert targets <= LEAVES, f"{name} is a leaf but imports {sorted(targets - LEAVES)}"
        for package, allowed in ALLOWED.items():
            if name == package or name.startswith(package + "."):
                wrong = {t for t in targets - LEAVES if not any(t == a or t.startswith(a + ".") for a in allowed)}
                assert not wrong, f"{name} imports {sorted(wrong)}: {package} may use only {sorted(allowed)} and leaves"
    eval_imports = {t for n, ts in graph.items() if n.startswith("promptrl.eval") for t in ts}
    assert not eval_imports & {"promptrl.trainer", "promptrl.cli"}, "the eval layer sits below the trainer and CLI"
    assert not any(t.startswith("promptrl.app") for t in eval_imports)


def run_file_names() -> set[str]:
    """The file names rundir.py declares (its `*_FILE` constants)."""
    tree = ast.parse((PACKAGE / "rundir.py").read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            if any(isinstance(t, ast.Name) and t.id.endswith(("_FILE", "_DIR")) for t in node.targets):
                names.add(node.value.value)
    return names


def naming_run_files(path: Path, names: set[str]) -> list[str]:
    """Where `path` names a run's file: a string equal to a file name (docstrings aside), a
    path join onto a folder name (`run / "model"`), or one of rundir's name constants."""
    files = {n for n in names if "." in n}
    folders = names - files
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if node.value in files or node.value.startswith("checkpoint-"):
                found.append((line, repr(node.value)))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and isinstance(node.right, ast.Constant):
            if node.right.value in folders:
                found.append((line, f"/ {node.right.value!r}"))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "rundir":
            if node.attr.isupper():
                found.append((line, f"rundir.{node.attr}"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").endswith("rundir"):
            found += [(line, f"imports {a.name}") for a in node.names if a.name.isupper()]
    return [f"{path.relative_to(PACKAGE)}:{line} {what}" for line, what in sorted(found)]


def test_only_rundir_names_a_run_file():
    files = run_file_names()
    assert {"config.yaml", "promptrl.json", "model", "heldout.txt", "eval"} <= files
    offenders = [
        hit
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "rundir.py"
        for hit in naming_run_files(path, files)
    ]
    assert not offenders, "name a run's files through rundir.Run / RunPaths instead: " + "; ".join(offenders)


def test_the_run_file_check_can_fail(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path)
    bad = tmp_path / "bad.py"
    bad.write_text(
        '"""Reads config.yaml."""\nfrom .rundir import MODEL_DIR\nimport rundir\n'
        'x = run / "model"\ny = rundir.CONFIG_FILE\nz = "checkpoint-000001"\n'
    )
    hits = naming_run_files(bad, {"config.yaml", "model"})
    assert [h.split(" ", 1)[1] for h in hits] == [
        "imports MODEL_DIR",
        "/ 'model'",
        "rundir.CONFIG_FILE",
        "'checkpoint-000001'",
    ]
    bad.write_text('x = {"model": 1}\nhelp = "see config.yaml"\n')  # a key, and prose that mentions a file
    assert naming_run_files(bad, {"config.yaml", "model"}) == []


def test_no_module_is_too_long():
    lengths = {
        str(path.relative_to(PACKAGE)): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    too_long = {f: n for f, n in lengths.items() if n > MAX_LINES and f not in LONG_MODULES}
    assert not too_long, f"modules over {MAX_LINES} lines (split them by job): {too_long}"
    stale = sorted(f for f in LONG_MODULES if lengths.get(f, 0) <= MAX_LINES)
    assert not stale, f"{stale} fit in {MAX_LINES} lines now: take them off LONG_MODULES"


def test_one_docstring_style():
    """Markdown code spans (`name`), as the README and the app's help use, not reST's ``name``."""
    rst = [
        f"{path.relative_to(PACKAGE)}:{n}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "``" in line
    ]
    assert not rst, f"reST double backticks (write `name`): {', '.join(rst)}"
