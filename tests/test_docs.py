"""The documentation site (docs/, mkdocs.yml): its pages are its nav, the repository URL is set
once (pyproject.toml) and used everywhere, and the pages' code runs.

The pages' ```python and ```bash blocks run as the README's do (tests/test_readme.py: the tiny
preset, small sizes, offline; lines that cannot run here skipped with a reason), page after page
in nav order in one temporary directory, so a page may use what an earlier one made (the
quickstart's `runs/tiny`). A ```yaml block is a config file: it must load with `load_config`.
A ```text block (output, a layout, a usage line) is not run. Sections of the README that pages
include (`--8<-- "README.md:..."`) are run by tests/test_readme.py.

`make docs` (in CI) builds the site with `mkdocs build --strict`: broken links and anchors,
unreadable docstrings and missing README sections fail there.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from test_readme import README, ROOT, blocks, check_commands, run_blocks

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

DOCS = ROOT / "docs"
MKDOCS = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
URLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
LANGUAGES = {"python", "bash", "yaml", "text"}
REPOSITORY_PATTERNS = [
    r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)",
    r"git\+https://github\.com/([\w.-]+/[\w.-]+)",
]
"""Where a repository is named: a Colab badge, a pip install from git."""
SKIPPED = {
    "pip install": "installs from the network; this test runs the checkout",
    "git clone": "needs the network; this test runs the checkout",
    "make demo": "make starts this test suite's machinery; the demo is the tiny preset's train, run here",
    "make test": "recursion: this test is part of make test",
    "make app": "serves until stopped: tests/test_app.py drives the app, tests/test_attacks.py serves it",
    "make docs": "CI runs it after make test (.ci/run)",
    "make lint": "CI runs it after make test (.ci/run)",
    "make bench": "benchmarks: minutes of timing, run by hand",
    "python bench/": "benchmarks: minutes of timing, run by hand",
    "bench/device.sh": "the GPU benchmarks: wheels from the package index, then minutes of timing on a GPU",
    "PYTHON=.venv/bin/python HUB_SIZE=small": "bench/device.sh's check of itself on a CPU: minutes, run by hand",
    "promptrl app": "serves until stopped: tests/test_app.py drives the app, tests/test_attacks.py serves it",
    "python app.py": "serves until stopped: tests/test_real_path.py starts it against the stand-in hub",
    "read -rs PROMPTRL_APP_AUTH": "reads a password from the terminal",
    "promptrl train --preset bloom-560m": "the real models (hub, one GPU); "
    "tests/test_real_path.py trains this preset against the stand-in hub",
    "promptrl train --preset qwen2.5-0.5b": "the real models (hub, one GPU); "
    "tests/test_chat.py trains this preset against the stand-in hub",
    **{
        f"promptrl train --preset {preset}": "the real image model (hub, one large GPU); "
        "tests/test_families.py trains each family's stand-in by its hub name"
        for preset in ("sdxl-turbo", "flux-schnell", "sd3.5-medium")
    },
    "promptrl train --config my.yaml --resume runs/bloom-560m": "continues the bloom-560m run above; "
    "tests/test_trainer.py resumes runs exactly",
    "accelerate launch --multi_gpu --num_processes 4": "needs four GPUs",
    "accelerate launch --multi_gpu --num_machines 2": "needs two machines",
    "ACCELERATE_USE_CPU=true accelerate launch": "two processes: tests/test_distributed.py runs "
    "this command on the tiny preset",
}


def nav_pages(nav) -> list[str]:
    """The page files a mkdocs nav lists, in order."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in nav_pages(value)]
    return [page for item in nav for page in nav_pages(item)]


PAGES = nav_pages(MKDOCS["nav"])


def page_blocks() -> list[tuple[str, str, str]]:
    """(page, language, code) of every fenced block of the pages, in nav order."""
    return [(page, lang, code) for page in PAGES for lang, code in blocks((DOCS / page).read_text())]


def test_every_page_is_in_the_nav_once_and_every_nav_entry_exists():
    on_disk = sorted(str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md"))
    assert len(PAGES) == len(set(PAGES)), f"pages listed twice in mkdocs.yml's nav: {PAGES}"
    assert sorted(PAGES) == on_disk, (
        f"not in the nav: {sorted(set(on_disk) - set(PAGES))}; in the nav but missing: {sorted(set(PAGES) - set(on_disk))}"
    )


def test_the_repository_url_is_set_once_in_pyproject_and_used_everywhere():
    repo, docs = URLS["Repository"], URLS["Documentation"]
    slug = repo.removeprefix("https://github.com/")
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", slug), repo
    assert MKDOCS["repo_url"] == repo and MKDOCS["site_url"] == docs
    assert URLS["Issues"] == f"{repo}/issues"
    readme = README.read_text()
    colab = f"https://colab.research.google.com/github/{slug}/blob/main/notebooks/"
    assert f"{colab}promptrl_colab.ipynb" in readme and f"git+{repo}" in readme
    notebooks = {path.name: path for path in (ROOT / "notebooks").glob("*.ipynb")}
    assert notebooks
    for name, path in notebooks.items():
        source = "\n".join("".join(cell["source"]) for cell in json.loads(path.read_text())["cells"])
        assert f"{colab}{name}" in source, f"{name}: its Colab badge"
        assert f'REPO_URL = "{repo}"' in source, f"{name}: its %pip install cell"
    texts = [readme, *(path.read_text() for path in DOCS.rglob("*.md")), *(p.read_text() for p in notebooks.values())]
    for text in texts:  # no other repository named as this one
        for pattern in REPOSITORY_PATTERNS:
            assert set(re.findall(pattern, text)) <= {slug}
    for page in re.findall(re.escape(docs) + r"([\w/-]*)", readme):  # the README's links into the site
        assert (DOCS / (page.strip("/") or "index")).with_suffix(".md").exists(), f"README links to {page}: no page"


def test_every_block_is_known_and_every_command_is_run_or_skipped():
    found = page_blocks()
    unknown = {(page, lang) for page, lang, _ in found if lang not in LANGUAGES}
    assert not unknown, f"blocks in a language the test neither runs nor knows to leave alone: {unknown}"
    check_commands([(lang, code) for _, lang, code in found], SKIPPED, "the docs")


def test_the_config_files_shown_load(tmp_path):
    from promptrl.config import load_config

    shown = [(page, code) for page, lang, code in page_blocks() if lang == "yaml"]
    assert shown
    for i, (page, code) in enumerate(shown):
        path = tmp_path / f"{Path(page).stem}_{i}.yaml"  # a failure names the page
        path.write_text(code)
        load_config(None, str(path))  # raises, naming the key, for a config that does not load


def test_the_family_table_says_what_the_presets_set():
    """docs/families.md's first table, row by row, against the presets and the family table."""
    from promptrl.config import get_preset
    from promptrl.families import family_of
    from promptrl.presets import FAMILY_RENDER

    text = (DOCS / "families.md").read_text()
    table = text.split("## The families", 1)[1].split("\n\n", 1)[1].split("\n\n", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]
    checked = set()
    for _, preset, repo, pipeline, _, settings, tokens, dtype in rows:
        preset = re.match(r"`([^`]+)`", preset).group(1)
        config = get_preset(preset)
        r = config.render
        assert repo == f"`{r.pipeline}`", preset
        assert settings == f"{r.num_inference_steps}, {r.guidance_scale:g}, {r.height}x{r.width}", preset
        assert tokens == str(config.generation.max_new_tokens), preset
        assert dtype == family_of(pipeline.strip("`")).dtype, preset
        checked.add(preset)
    assert checked == {"bloom-560m", *FAMILY_RENDER}


@pytest.mark.slow
def test_docs_blocks_run(tmp_path):
    out = run_blocks([(page, lang, code) for page, lang, code in page_blocks()], tmp_path, SKIPPED)
    generate = next(text for command, text in out.items() if command.startswith("promptrl generate"))
    assert generate.count("a lighthouse in a storm -> ") == 2 and generate.count("a quiet forest -> ") == 2
    assert "sft" in out["promptrl sft --preset tiny --corpus my_prompts.txt"]
    for run_dir in ("runs/tiny", "runs/api"):
        assert (tmp_path / run_dir / "model").is_dir(), run_dir
    assert (tmp_path / "runs/tiny/eval/eval.md").exists() and (tmp_path / "runs/api/eval/eval.json").exists()
