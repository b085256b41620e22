# Every target does its own set-up: a fresh clone needs nothing but python3.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
OFFLINE := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False

.PHONY: demo test app bench lint mutants

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

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
