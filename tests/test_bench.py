"""The GPU check's CPU dry run: it runs, prints its JSON line, and needs only the JAX stack.

GPU machines have no TensorFlow, seqio or gin, so the check's whole run (models, partitioning,
optimizer, train step, decoding, the bench helpers, torch and transformers) must not import
them. Their JAX stack is newer than ours (JAX 0.11), so the run must also use nothing that the
JAX libraries here already deprecate: what they deprecate, a later release removes. Nothing here
times anything: the numbers are the bench's business.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
FORBIDDEN = ("tensorflow", "tensorflow_datasets", "seqio", "gin")

# Where a deprecation warning raised while the check runs counts against us: the JAX stack and
# our own code (torch's and transformers' own deprecations are theirs).
WATCHED = ("jax", "jaxlib", "flax", "optax", "orbax", "flan_jax", "bench")

# The full dry run in a fresh interpreter, recording every warning; then the forbidden top-level
# modules it loaded and the deprecations raised from the watched packages.
_RUN_AND_LIST_IMPORTS = f"""
import json, os, runpy, sys, warnings
sys.argv = ["device_check.py", "--dry-run"]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    runpy.run_path({str(REPO / "bench" / "device_check.py")!r}, run_name="__main__")
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({FORBIDDEN!r}))
def watched(path):
    parts = os.path.normpath(path).split(os.sep)
    return any(p in {WATCHED!r} for p in parts)
deprecations = sorted({{
    f"{{w.category.__name__}}: {{w.message}} ({{w.filename}}:{{w.lineno}})"
    for w in caught
    if issubclass(w.category, (DeprecationWarning, FutureWarning)) and watched(w.filename)
}})
print(json.dumps({{"forbidden_loaded": loaded, "decoding": "flan_jax.evaluation.decoding" in
    sys.modules, "deprecations": deprecations}}))
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # conftest's 8 devices
    return {**env, "PYTHON": sys.executable, "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="module")
def dry_run() -> tuple[dict, dict]:
    proc = subprocess.run(
        [sys.executable, "-c", _RUN_AND_LIST_IMPORTS],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    return json.loads(lines[-2]), json.loads(lines[-1])


@pytest.mark.slow
def test_dry_run_prints_every_row(dry_run):
    result, _ = dry_run
    assert result["bench"] == "device_check" and result["dry_run"] is True
    for row in ("t5_train", "llama_train"):
        assert "error" not in result[row], result[row]
        for side in ("ours", "theirs"):
            assert result[row][side]["tokens_per_s"] > 0
            assert set(result[row][side]) >= {"step_s", "mfu", "loss_first_last"}
        assert result[row]["ours_over_theirs"] > 0
    decode = result["t5_decode"]
    assert "error" not in decode, decode
    assert decode["ours_tokens_per_s"] > 0 and decode["theirs_tokens_per_s"] > 0


def test_dry_run_imports_no_tensorflow_seqio_or_gin(dry_run):
    _, imports = dry_run
    assert imports["decoding"]  # the real decoding path ran
    assert imports["forbidden_loaded"] == []


def test_dry_run_uses_nothing_the_jax_stack_deprecates(dry_run):
    _, imports = dry_run
    assert imports["deprecations"] == []


@pytest.mark.slow
def test_shell_script_runs_the_check():
    proc = subprocess.run(
        [str(REPO / "bench" / "device_check.sh"), "--dry-run", "--only", "t5_decode"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result) >= {"bench", "device", "jax", "torch", "t5_decode"}
    assert "t5_train" not in result and "error" not in result["t5_decode"]


def test_without_a_gpu_the_full_check_says_so():
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "device_check.py")],
        env={**_env(), "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "JAX sees no GPU" in proc.stderr and "--dry-run" in proc.stderr
