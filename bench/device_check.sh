#!/usr/bin/env bash
# The GPU check: T5 1.1 base and a Llama-family train step, and T5 decoding, each against
# PyTorch/transformers on the same GPU; prints one JSON line (progress on stderr).
#
#   bench/device_check.sh              # on a GPU machine, from anywhere; ~3-6 minutes
#   bench/device_check.sh --dry-run    # CPU, tiny shapes: the same code, well under a minute
#
# Needs only the JAX stack (jax with CUDA, flax, optax, orbax) plus torch and transformers:
# no TensorFlow, seqio or gin, no network, and no install (the repo is put on PYTHONPATH).
# PYTHON picks the interpreter (default: the repo's .venv if present, else python3).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$repo/.venv/bin/python" ]]; then PYTHON="$repo/.venv/bin/python"; else PYTHON=python3; fi
fi
# JAX and torch share the GPU in one process: JAX allocates as it goes instead of taking 75% of
# the memory at start-up.
export XLA_PYTHON_CLIENT_PREALLOCATE="${XLA_PYTHON_CLIENT_PREALLOCATE:-false}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" "$repo/bench/device_check.py" "$@"
