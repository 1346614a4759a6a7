# Two commands on a fresh clone: `make smoke` (the main job, tiny and local) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install smoke test lint format lock bench clean-runs

# The venv is (re)built when the lock file or setup.py changes.
$(STAMP): requirements.lock setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)

smoke: $(STAMP)
	CUDA_VISIBLE_DEVICES= $(BIN)/flan-jax smoke

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	CUDA_VISIBLE_DEVICES= $(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder tests

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Re-resolve the pinned sets (needs network to PyPI): requirements.lock is everything `make test`
# needs (runtime + test + benchmark/reference packages); requirements-runtime.lock is the subset
# that `pip install .` pulls in, what a TPU/GPU worker installs (launch/tpu.py).
lock:
	rm -rf /tmp/flan_jax_lock_venv && $(PYTHON) -m venv /tmp/flan_jax_lock_venv
	/tmp/flan_jax_lock_venv/bin/pip install -q -r requirements.in
	( echo '# Full pinned dependency set (Python 3.11, x86_64 CPU). Regenerate with `make lock`.'; \
	  /tmp/flan_jax_lock_venv/bin/pip freeze | sed "s/+cpu$$//" ) > requirements.lock
	rm -rf /tmp/flan_jax_runtime_venv && $(PYTHON) -m venv /tmp/flan_jax_runtime_venv
	/tmp/flan_jax_runtime_venv/bin/pip install -q -c requirements.lock .
	( echo '# Runtime dependency set: what `flan-jax train` / `eval` need on a TPU or GPU worker (no test,'; \
	  echo '# benchmark or reference packages). The subset of requirements.lock that `pip install .` pulls in;'; \
	  echo '# regenerate both with `make lock`.'; \
	  /tmp/flan_jax_runtime_venv/bin/pip freeze --exclude flan_jax ) > requirements-runtime.lock

clean-runs:
	rm -rf runs
