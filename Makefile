# Every target does its own set-up: a fresh clone needs nothing but python3.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
OFFLINE := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
SHELL := /bin/bash
# A machine's pip config may list an extra index (e.g. file:///opt/...) that lacks most
# packages; pip then warns "Location '...' is ignored" once per package. Only those lines are
# dropped: every other warning and error is printed, and pip's exit status is kept (pipefail).
PIP_FILTER := 2>&1 | { grep -v "^WARNING: Location '.*' is ignored" || true; }
# setuptools' build of the editable install warns about folders named like the package (the
# checkout itself is one, by design): that warning alone is silenced in the build.
QUIET_EDITABLE := PYTHONWARNINGS='ignore:Editable installation'

.PHONY: demo test app bench bench-trl lint mutants docs

$(VENV)/.installed: requirements.txt pyproject.toml
	@echo "Installing promptrl and its dependencies into $(VENV) (first run: a few minutes)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@set -o pipefail; $(PY) -m pip install --quiet --upgrade pip $(PIP_FILTER)
	@set -o pipefail; $(QUIET_EDITABLE) $(PY) -m pip install --quiet -e '.[test,docs]' $(PIP_FILTER)
	@touch $@

# Headless Chromium for the browser test; skipped quietly where apt is unavailable.
$(VENV)/.chromium: $(VENV)/.installed
	command -v chromium >/dev/null 2>&1 || { (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 || echo "chromium not installed: browser tests will be skipped"; }
	touch $@

demo: $(VENV)/.installed
	$(OFFLINE) $(VENV)/bin/promptrl train --preset tiny --output-dir runs/tiny-demo --overwrite

test: $(VENV)/.installed $(VENV)/.chromium
	$(OFFLINE) $(PY) -m pytest -q -p no:cacheprovider --timeout 900

app: $(VENV)/.installed
	$(OFFLINE) $(PY) app.py --preset tiny

bench: $(VENV)/.installed
	$(OFFLINE) $(PY) bench/ppo_step.py

# trl 0.11.4, the last trl with PPOTrainer.step(queries, responses, scores), needs an older
# transformers than promptrl: it gets a venv of its own (built on first use, a few minutes).
TRL_VENV := .venv-trl
$(TRL_VENV)/.installed:
	@echo "Installing trl 0.11.4 into $(TRL_VENV) for the side-by-side benchmark"
	@test -x $(TRL_VENV)/bin/python || $(PYTHON) -m venv $(TRL_VENV)
	@set -o pipefail; $(TRL_VENV)/bin/pip install --quiet torch==2.13.0 $(PIP_FILTER)
	@set -o pipefail; $(TRL_VENV)/bin/pip install --quiet "trl==0.11.4" "transformers>=4.44,<4.47" \
		"accelerate<1.2" "datasets<3.2" rich $(PIP_FILTER)
	@touch $@

bench-trl: $(VENV)/.installed $(TRL_VENV)/.installed
	$(OFFLINE) $(PY) bench/trl_side_by_side.py --trl-python $(TRL_VENV)/bin/python

# Plants one bug at a time in the PPO code; fails if the PPO tests miss one.
mutants: $(VENV)/.installed
	$(OFFLINE) $(PY) tests/mutants.py

# The documentation site, into site/; --strict: a warning (a broken link or anchor, a docstring
# mkdocstrings cannot read, a README section the pages include gone missing) fails the build.
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
