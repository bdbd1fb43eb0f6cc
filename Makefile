# tfbio: one-command setup + main job, and setup + tests (see README).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TF_EXTRA ?= cpu

.PHONY: setup demo test bench clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(TF_EXTRA),test]'
	touch $@

setup: $(VENV)/.installed

# Main job (offline): bp vs ss vs fa on scikit-learn's bundled digits.
demo: setup
	$(PY) tools/digits_demo.py

test: setup
	$(PY) -m pytest -q tests

bench: setup
	$(PY) bench/step_time.py

clean:
	rm -rf $(VENV) build *.egg-info
