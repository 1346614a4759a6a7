"""The entry layer stays light and the compute path stands alone.

`flan-jax --help` (and every subcommand's) must not start JAX, TensorFlow or seqio, and the
compute modules (models, sharding, optimizers, the train step, scoring, decoding) must import
without TensorFlow, seqio or gin, so they run on a machine that has only the JAX stack.
"""

import json
import os
import subprocess
import sys

import pytest

from flan_jax import cli

HEAVY = ("jax", "tensorflow", "seqio", "gin", "tensorflow_datasets", "torch", "flax")
COMPUTE = (
    "flan_jax.models",
    "flan_jax.partitioning",
    "flan_jax.optim",
    "flan_jax.train_step",
    "flan_jax.evaluation.scoring",
    "flan_jax.evaluation.decoding",
)


def _loaded_after(code: str) -> set[str]:
    """Top-level packages in sys.modules after running `code` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=os.environ
    ).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


@pytest.mark.parametrize("command", [None] + [c[0] for c in cli.COMMANDS])
def test_help_imports_nothing_heavy(command):
    argv = ["--help"] if command is None else [command, "--help"]
    code = (
        "import contextlib, io\n"
        "from flan_jax.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f"    main({argv!r})"
    )
    assert not _loaded_after(code) & set(HEAVY)


def test_compute_path_imports_no_tensorflow_seqio_or_gin():
    loaded = _loaded_after("\n".join(f"import {m}" for m in COMPUTE))
    assert "jax" in loaded and "flax" in loaded  # the probe does see what was imported
    assert not loaded & {"tensorflow", "seqio", "gin", "tensorflow_datasets"}


def test_module_entry_and_one_line_usage_errors():
    run = subprocess.run(
        [sys.executable, "-m", "flan_jax.cli", "--help"], capture_output=True, text=True
    )
    assert run.returncode == 0 and "inspect" in run.stdout and "preflight" in run.stdout
    run = subprocess.run(
        [sys.executable, "-m", "flan_jax.cli", "list", "--no-such-flag"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "unrecognized arguments: --no-such-flag" in run.stderr


@pytest.mark.slow
def test_startup_noise_is_silenced_unless_verbose():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    env.pop("FLAN_JAX_VERBOSE", None)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    argv = [sys.executable, "-m", "flan_jax.cli", "list", "demo"]
    quiet = subprocess.run(argv, capture_output=True, text=True, env=env)
    assert quiet.returncode == 0, quiet.stderr
    assert "collection demo" in quiet.stdout
    assert quiet.stderr == ""
    loud = subprocess.run(
        [*argv[:3], "--verbose", *argv[3:]], capture_output=True, text=True, env=env
    )
    assert loud.returncode == 0 and "collection demo" in loud.stdout
    assert "cuda" in loud.stderr.lower()  # TensorFlow's start-up lines are back
