"""launch/tpu.py and launch/gpu.py: dry runs print the exact commands; bad setups fail in one line.

No network and no gcloud: dry runs only build the commands, and the fail-fast checks run before
anything is contacted.
"""

import importlib.util
import os
import pathlib
import shlex
import signal
import subprocess
import sys
import time

import pytest

LAUNCH = pathlib.Path(__file__).resolve().parents[1] / "launch"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"launch_{name}", LAUNCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tpu = _load("tpu")
gpu = _load("gpu")

SLICE = [
    "--name=flan-base",
    "--zone=us-central2-b",
    "--project=my-proj",
    "--accelerator_type=v4-32",
]
GIN = [
    "--",
    "--gin_file=experiments/flan2021_t5_base.gin",
    '--gin.INITIAL_CHECKPOINT_PATH="gs://b/ckpt/base"',
]


def _commands(out: str) -> list[list[str]]:
    return [shlex.split(line[2:]) for line in out.splitlines() if line.startswith("+ ")]


@pytest.mark.parametrize(
    "kind, hosts",
    [
        ("v4-8", 1),
        ("v4-32", 4),
        ("v4-64", 8),
        ("v3-8", 1),
        ("v5p-16", 2),
        ("v5litepod-8", 1),
        ("v5litepod-16", 4),
        ("v6e-4", 1),
        ("v6e-256", 64),
    ],
)
def test_workers_from_accelerator_type(kind, hosts):
    assert tpu.num_workers(kind) == hosts


def test_tpu_dry_run_multi_worker(capsys, monkeypatch):
    monkeypatch.setenv("PATH", "")  # a dry run needs neither gcloud nor the network
    monkeypatch.setattr(tpu, "git_commit", lambda: "abc123")
    argv = SLICE + ["--model_dir=gs://b/runs/base", "--tfds_data_dir=gs://b/tfds", "--dry-run"]
    assert tpu.main(argv + GIN) == 0
    out = capsys.readouterr().out
    assert "v4-32: 4 worker(s)" in out
    describe, create, archive, scp, install, train = _commands(out)
    where = ["--zone=us-central2-b", "--project=my-proj"]
    tpu_vm = ["gcloud", "compute", "tpus", "tpu-vm"]
    assert describe[:6] + describe[6:8] == tpu_vm + ["describe", "flan-base"] + where
    assert create == tpu_vm + ["create", "flan-base"] + where + [
        "--accelerator-type=v4-32",
        "--version=tpu-ubuntu2204-base",
    ]
    assert archive[-1] == "HEAD" and "--output=/tmp/flan_jax-abc123.tar.gz" in archive
    assert scp[:5] == tpu_vm + ["scp"] and scp[-1] == "--worker=all"
    assert scp[5:7] == ["/tmp/flan_jax-abc123.tar.gz", "flan-base:flan_jax-abc123.tar.gz"]

    assert install[:8] == tpu_vm + ["ssh", "flan-base"] + where
    assert install[8] == "--worker=all" and install[9].startswith("--command=")
    script = install[9].removeprefix("--command=")
    jax_version = tpu.lock_jax_version(str(LAUNCH.parent / "requirements-runtime.lock"))
    # Guarded by the commit's stamp file: a second run of the same commit skips the install.
    assert script.startswith("set -e; if [ -f ~/flan_jax/.installed-abc123 ]; then ")
    steps = script.split("exit 0; fi; ", 1)[1].split("; ")
    lock = steps.index(".venv/bin/pip install -q -r requirements-runtime.lock")
    assert steps[lock + 1] == f".venv/bin/pip install -q 'jax[tpu]=={jax_version}'"
    assert steps[-2] == "touch ~/flan_jax/.installed-abc123"

    assert train[:10] == install[:9] + [train[9]] and train[8] == "--worker=all"
    remote = train[9].removeprefix("--command=")
    assert "TFDS_DATA_DIR=gs://b/tfds" in remote
    flan = shlex.split(remote.split(" .venv/bin/flan-jax ", 1)[1].split(" 2>&1", 1)[0])
    assert flan == [
        "train",
        "--gin_file=experiments/flan2021_t5_base.gin",
        '--gin.INITIAL_CHECKPOINT_PATH="gs://b/ckpt/base"',
        '--gin.MODEL_DIR="gs://b/runs/base"',
    ]
    assert 'sed -u "s/^/[worker $W] /"' in remote and "set -o pipefail" in remote


def test_tpu_dry_run_single_host_v5e_and_env(capsys, monkeypatch):
    monkeypatch.setattr(tpu, "git_commit", lambda: "abc123")
    for var, value in [
        ("TPU_NAME", "one"),
        ("ZONE", "us-west4-a"),
        ("PROJECT", "p"),
        ("ACCELERATOR_TYPE", "v5litepod-8"),
    ]:
        monkeypatch.setenv(var, value)
    assert tpu.main(["--model_dir=runs/local", "--dry-run"] + GIN) == 0  # one host: local is ok
    commands = _commands(capsys.readouterr().out)
    assert "--version=v2-alpha-tpuv5-lite" in commands[1]
    assert "--accelerator-type=v5litepod-8" in commands[1] and "--zone=us-west4-a" in commands[1]


def _error(capsys, argv) -> str:
    assert tpu.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


def test_tpu_fail_fast(capsys, monkeypatch):
    for var in ("TPU_NAME", "ZONE", "PROJECT", "ACCELERATOR_TYPE"):
        monkeypatch.delenv(var, raising=False)
    run = ["--model_dir=gs://b/r", "--dry-run"] + GIN
    no_project = [a for a in SLICE if not a.startswith("--project")]
    no_zone = [a for a in SLICE if not a.startswith("--zone")]
    assert "no TPU project: pass --project=... or set $PROJECT" in _error(capsys, no_project + run)
    assert "no TPU zone: pass --zone=... or set $ZONE" in _error(capsys, no_zone + run)
    err = _error(capsys, SLICE + ["--model_dir=runs/local", "--dry-run"] + GIN)
    assert "not on gs://" in err and "4 workers" in err
    assert "unknown" in _error(capsys, SLICE + ["--accelerator_type=v9-8", "--dry-run"] + GIN)
    assert "no gin file" in _error(capsys, SLICE + ["--model_dir=gs://b/r", "--dry-run"])


def test_tpu_no_gcloud_on_path():
    """The real script under an empty PATH: one line naming gcloud, exit code 2, no traceback."""
    argv = SLICE + ["--model_dir=gs://b/r"] + GIN
    result = subprocess.run(
        [sys.executable, str(LAUNCH / "tpu.py"), *argv],
        env={"PATH": "", "HOME": os.environ.get("HOME", "/tmp")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "launch/tpu.py: error: gcloud is not on PATH; install the Google Cloud CLI "
        "(https://cloud.google.com/sdk/docs/install) and run `gcloud auth login`"
    ]
    assert result.stdout == ""


def test_gpu_dry_run(capsys, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/dump")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    argv = ["--model_dir=runs/small", "--gpus=0,1", "--tfds_data_dir=/data/tfds", "--dry-run"]
    assert gpu.main(argv + ["--", "--gin_file=experiments/flan2021_t5_small.gin"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("+ ")
    words = shlex.split(line[2:])
    settings = dict(w.split("=", 1) for w in words[:4])
    flags = settings["XLA_FLAGS"].split()
    assert flags[: len(gpu.GPU_XLA_FLAGS)] == list(gpu.GPU_XLA_FLAGS)
    assert flags[-1] == "--xla_dump_to=/tmp/dump"  # the user's flags come last, so they win
    assert settings["CUDA_VISIBLE_DEVICES"] == "0,1" and settings["TFDS_DATA_DIR"] == "/data/tfds"
    assert settings["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.9"
    assert words[4].endswith("flan-jax") and words[5:] == [
        "train",
        "--gin_file=experiments/flan2021_t5_small.gin",
        '--gin.MODEL_DIR="runs/small"',
    ]
    env = gpu.gpu_env({"JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": "3"}, None)
    assert "JAX_PLATFORMS" not in env and env["CUDA_VISIBLE_DEVICES"] == "3"  # passed through
    assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"


def test_gpu_xla_flags_known_to_jaxlib():
    """XLA aborts on an unknown flag: every flag gpu.py sets must exist in the pinned jaxlib."""
    env = dict(os.environ, XLA_FLAGS=" ".join(gpu.GPU_XLA_FLAGS), JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", "import jax; jax.devices()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-500:]


def test_tpu_remote_scripts_are_valid_bash(monkeypatch):
    monkeypatch.setattr(tpu, "git_commit", lambda: "abc123")
    args = tpu.parse_args(SLICE + ["--model_dir=gs://b/r", "--tfds_data_dir=gs://b/t"] + GIN)
    tpu.validate(args)
    for script in (
        tpu.install_script("abc123", "0.10.2", "python3.11"),
        tpu.train_script(args, "r"),
    ):
        result = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def _pins(path):
    with open(path, encoding="utf-8") as f:
        return dict(
            line.strip().split("==", 1) for line in f if "==" in line and not line.startswith("#")
        )


def test_runtime_lock_is_the_runtime_subset_of_the_full_lock():
    """Workers install requirements-runtime.lock: the same pins as requirements.lock, without
    the test, benchmark and reference packages, and closed over setup.py's install_requires."""
    from importlib import metadata

    from packaging.requirements import Requirement

    root = LAUNCH.parent
    full, runtime = _pins(root / "requirements.lock"), _pins(root / "requirements-runtime.lock")
    assert {k: full.get(k) for k in runtime} == runtime  # a subset, same versions
    assert not {"torch", "transformers", "pytest", "ruff", "import-linter"} & set(runtime)
    # Everything the installed package needs at run time is pinned there.
    canon = {k.lower().replace("_", "-") for k in runtime}
    todo = [Requirement(r) for r in metadata.requires("flan_jax") or []]
    seen = set()
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an extra (test, reference) or another platform's dependency
        if name in seen or name in ("pip", "setuptools", "wheel"):  # every venv has them
            continue
        seen.add(name)
        assert name in canon, f"{name} (needed at run time) is missing from the runtime lock"
        todo += [Requirement(r) for r in metadata.requires(req.name) or []]


local = _load("local_multiprocess")


def _python(code: str, log):
    """A stand-in for one process of a local job: `code` under a Python that dumps its stacks
    on SIGUSR1 (as `flan-jax` does)."""
    prelude = "import faulthandler, signal, sys, time; faulthandler.register(signal.SIGUSR1)\n"
    return subprocess.Popen([sys.executable, "-c", prelude + code], stdout=log, stderr=log)


def test_local_launcher_stops_the_job_when_one_process_fails(tmp_path, capsys):
    # Process 1 dies; process 0 would wait forever for it (here: sleeps). The launcher names the
    # failure and stops process 0 with SIGTERM well before the 120 s timeout.
    logs = [open(tmp_path / f"p{i}.log", "w") for i in range(2)]
    procs = [
        (_python("time.sleep(120)", logs[0]), logs[0]),
        (_python("time.sleep(0.5); sys.exit(3)", logs[1]), logs[1]),
    ]

    def stop_all(signum, frame):
        for p, _ in procs:
            if p.poll() is None:
                p.send_signal(signum)

    assert local._wait(procs, 120, stop_all) == 3
    assert procs[0][0].returncode == -signal.SIGTERM
    assert "process 1 failed (exit code 3" in capsys.readouterr().out


def test_local_launcher_timeout_dumps_stacks_and_exits_124(tmp_path, capsys):
    log = open(tmp_path / "p0.log", "w")
    proc = _python("def waiting_for_peer():\n    time.sleep(120)\nwaiting_for_peer()", log)
    time.sleep(1)  # the stand-in has registered its handler
    assert local._wait([(proc, log)], 2, lambda *a: None) == 124
    proc.kill()
    proc.wait()
    log.close()
    assert "waiting_for_peer" in (tmp_path / "p0.log").read_text()  # its stack, in its log
    assert "timed out after 2 s: process(es) [0] still running" in capsys.readouterr().out


def test_local_launcher_has_no_time_limit_by_default(tmp_path):
    log = open(tmp_path / "p0.log", "w")
    proc = _python("time.sleep(1.5)", log)
    assert local._wait([(proc, log)], 0, lambda *a: None) == 0  # 0: no limit, not "at once"
    log.close()
