"""The allocator settings compute jobs run under (flan_jax.host_memory)."""

from __future__ import annotations

import ast
import os
import pathlib
import re
import signal
import subprocess
import sys

import pytest

from flan_jax import host_memory

REPO = pathlib.Path(__file__).resolve().parent.parent

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc tunables")


@linux_only
def test_tuned_environment_adds_the_tunables_once():
    env = host_memory.tuned_environment({"PATH": "/bin"})
    assert env == {"PATH": "/bin", "GLIBC_TUNABLES": host_memory.TUNABLES}
    # Already restarted under them: nothing more to do (no restart loop).
    assert host_memory.tuned_environment(env) is None
    # Other tunables are kept, ours appended.
    other = host_memory.tuned_environment({"GLIBC_TUNABLES": "glibc.rtld.optional_static_tls=1"})
    assert other["GLIBC_TUNABLES"] == f"glibc.rtld.optional_static_tls=1:{host_memory.TUNABLES}"


@linux_only
def test_a_users_own_malloc_tunables_and_the_opt_out_are_respected():
    assert host_memory.tuned_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}) is None
    assert host_memory.tuned_environment({"FLAN_JAX_KEEP_HOST_MEMORY": "0"}) is None


_CHILD = """
import os, resource, sys
from flan_jax import host_memory
host_memory.reexec_with_tuned_allocator()
import numpy as np
faults = []
for _ in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = np.empty(48 * 2**20, np.uint8)  # 48 MiB: above glibc's largest mmap threshold
    block[::4096] = 1  # touch every page
    del block
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(os.environ.get("GLIBC_TUNABLES"), *faults)
"""


def _child(env: dict[str, str]) -> tuple[str, list[int]]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], [int(x) for x in out[1:]]


@linux_only
def test_the_restarted_process_reuses_freed_memory():
    """Under the tunables a freed 48 MiB block is reused by the next allocation without page
    faults; with the system defaults every allocation faults its pages in again."""
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    tunables, faults = _child(env)
    assert tunables == host_memory.TUNABLES
    assert max(faults[1:]) < 16, faults  # the same pages, already mapped
    plain, faults = _child({**env, "FLAN_JAX_KEEP_HOST_MEMORY": "0"})
    assert plain == "None"
    assert min(faults) > 10, faults  # munmap on free, fresh pages every time


def _demo_train_command(model_dir: pathlib.Path, *settings: str) -> list[str]:
    """`python -m flan_jax.cli train` on the demo config (the command line's own process)."""
    argv = ["train", "--gin_file=experiments/demo_smoke.gin", f"--gin.MODEL_DIR='{model_dir}'"]
    return [sys.executable, "-m", "flan_jax.cli", *argv, *settings]


def _demo_train(model_dir: pathlib.Path, env: dict[str, str], *settings: str):
    return subprocess.run(
        _demo_train_command(model_dir, *settings),
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
    )


def test_compute_commands_restart_and_still_fail_in_one_line(tmp_path):
    """`flan-jax train` restarts itself under the tunables before it reads its settings; a bad
    setting is still one line and exit 2 from the restarted process, and nothing is written."""
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "FLAN_JAX_DEBUG")}
    run = _demo_train(tmp_path / "run", env, "--gin.TRAIN_STEPSS=3")
    assert run.returncode == 2, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "TRAIN_STEPSS" in run.stderr
    assert not (tmp_path / "run").exists()


def test_compile_cache_environment():
    from flan_jax import compile_cache

    env = compile_cache.environment({"XDG_CACHE_HOME": "/c"})
    assert env["JAX_COMPILATION_CACHE_DIR"] == "/c/flan_jax/xla"
    assert env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] == "0"
    assert int(env["JAX_COMPILATION_CACHE_MAX_SIZE"]) == compile_cache.MAX_BYTES
    assert compile_cache.environment({"JAX_COMPILATION_CACHE_DIR": "/mine"}) == {}
    assert compile_cache.environment({"FLAN_JAX_COMPILATION_CACHE": "0"}) == {}


@pytest.mark.slow
def test_train_fills_the_compilation_cache(tmp_path):
    """`flan-jax train` (the command line's own process) writes its compiled programs to the
    cache under $XDG_CACHE_HOME; JAX reads them back on the next launch (keyed by program,
    options and versions). The same run shows two things a batch job's log needs: SIGUSR1
    writes the Python stacks and the run goes on, and without a progress bar each logged step
    is a line."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("FLAN_JAX_COMPILATION_CACHE", "JAX_COMPILATION_CACHE_DIR")
    }
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    command = _demo_train_command(
        tmp_path / "run",
        "--gin.TRAIN_STEPS=1",
        "--gin.TASK_FEATURE_LENGTHS={'inputs': 32, 'targets': 8}",
        "--gin.TrainConfig.progress_bar=False",
    )
    run = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    first = []
    for line in run.stderr:  # the mesh line: the command has started (its handler is set)
        first.append(line)
        if " mesh {" in line:
            break
    run.send_signal(signal.SIGUSR1)
    out, rest = run.communicate(timeout=600)
    err = "".join(first) + rest
    assert run.returncode == 0, err[-2000:]
    assert "most recent call first" in err and "flan_jax" in err, err[-2000:]  # the stacks
    assert re.search(r"step 1/1: loss [0-9.]+, accuracy [0-9.]+, ", err), err[-2000:]
    done = ast.literal_eval(out.strip().splitlines()[-1].split("done: ", 1)[1])
    assert done["step"] == 1
    entries = list((tmp_path / "cache" / "flan_jax" / "xla").iterdir())
    assert len(entries) >= 2, entries  # at least the init and the train step
