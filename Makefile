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

.PHONY: demo test app bench lint mutants

$(VENV)/.installed: requirements.txt pyproject.toml
	@echo "Installing promptrl and its dependencies into $(VENV) (first run: a few minutes)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@set -o pipefail; $(PY) -m pip install --quiet --upgrade pip $(PIP_FILTER)
	@set -o pipefail; $(PY) -m pip install --quiet -e '.[test]' $(PIP_FILTER)
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

# Plants one bug at a time in the PPO code; fails if the PPO tests miss one.
mutants: $(VENV)/.installed
	$(OFFLINE) $(PY) tests/mutants.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
