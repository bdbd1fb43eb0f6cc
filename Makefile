# tfbio: one-command setup + main job, and setup + tests (see README).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TF_EXTRA ?= cpu

.PHONY: setup demo test test-apps bench bench-peer reproduce clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(TF_EXTRA),test]'
	touch $@

setup: $(VENV)/.installed

# Main job (offline): xiao2018's bp / ss / ss+last-bp / fa / fa+last-bp on
# liao2016's MNIST net, 3 seeds each, Fashion-MNIST (first 20,000 training
# images) if installed, else sklearn's digits; results.md (mean ± std, the
# setup, a verdict on xiao2018's claims) and curves.png.
# `make demo DEMO_DATA=digits DEMO_DIR=runs/demo_digits` forces digits.
DEMO_DATA ?= auto
DEMO_DIR ?= runs/demo
demo: setup
	$(VENV)/bin/tfbio-sweep \
	    --config=configs/demo.py:data=$(DEMO_DATA),train_examples=20000 \
	    --axes='algo=bp|ss|ss_lastbp|fa|fa_lastbp,seed=0|1|2' \
	    --verdict=xiao2018 --parallel=2 --workdir=$(DEMO_DIR)
	cat $(DEMO_DIR)/results.md

test: setup
	$(PY) -m pytest -q tests

# Every keras.applications model (tests/test_applications.py, slow_apps
# included): tfbio.convert(strict=True) + one SS step each.
test-apps: setup
	TFBIO_ALL_APPS=1 $(PY) -m pytest -q tests/test_applications.py

# Both benchmarks -> docs/results/performance.md (~8 min on 2 cores).
bench: setup
	$(PY) bench/report.py --out=docs/results/performance.md

# tfbio vs biotorch (PyTorch) on ResNet-20 and the LeNets, every rule ->
# the peer section of docs/results/performance.md (bench/peer_biotorch.py).
# Its own side venv, never part of setup/test: the torch CPU wheel, then
# biotorch without its pinned dependencies (they would pull CUDA and
# torchvision; the benchmark needs neither).
PEER_VENV ?= .venv-peer
$(PEER_VENV)/.installed:
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/pip install --quiet torch==2.13.0
	$(PEER_VENV)/bin/pip install --quiet --no-deps biotorch==0.0.16
	touch $@

bench-peer: setup $(PEER_VENV)/.installed
	$(PY) bench/peer_biotorch.py --peer_python=$(PEER_VENV)/bin/python \
	    --out=docs/results/performance.md

# The reproduction report (docs/results/README.md; ~60 min on 2 cores,
# resumable).
reproduce: setup
	$(PY) tools/reproduce.py --out=docs/results

clean:
	rm -rf $(VENV) $(PEER_VENV) build *.egg-info
