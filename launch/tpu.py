"""Runs ``flan-jax train`` on a Cloud TPU VM or pod slice: create or reuse, install, run.

    python launch/tpu.py --name=flan-base --zone=us-central2-b --project=MY_PROJECT \\
        --accelerator_type=v4-32 --model_dir=gs://BUCKET/runs/base_nli \\
        --tfds_data_dir=gs://BUCKET/tensorflow_datasets -- \\
        --gin_file=experiments/flan2021_t5_base.gin \\
        --gin.INITIAL_CHECKPOINT_PATH=\\"gs://BUCKET/ckpt/t5_1_1_base\\"

Three steps, each one ``gcloud`` command (``--dry-run`` prints them and touches nothing):

1. create or reuse: ``tpu-vm describe`` the TPU; create it (``tpu-vm create``) if it does not
   exist; refuse one of another accelerator type.
2. install on ``--worker=all``: copy ``git archive HEAD`` (committed files only) to every worker
   and, unless that commit's stamp file exists there, unpack it into ``~/flan_jax``, make a
   Python 3.11 venv, ``pip install -r requirements-runtime.lock`` (the runtime set: no test,
   benchmark or reference packages), then ``jax[tpu]`` at the lock's jax
   version (libtpu from the pip index) and the package. A second run of the same commit skips it.
3. run on ``--worker=all``: the same ``flan-jax train ... --gin.MODEL_DIR="..."`` on every
   worker (jax.distributed finds the slice by itself). Each worker prefixes its lines with
   ``[worker i]`` and also keeps them in ``~/flan_jax_logs/<run>.log`` on its disk; here they are
   split into LOG_DIR/worker_<i>.log, and worker 0's lines are echoed to the terminal
   (``--echo_all`` echoes every worker's). The exit code is gcloud's (non-zero if any worker fails).
   A worker that gets SIGTERM (preemption, maintenance) or SIGINT finishes its step, checkpoints
   (every worker at the same step) and exits with 75: run the same command again to resume.

Arguments fall back to the environment: TPU_NAME, ZONE, PROJECT, ACCELERATOR_TYPE,
RUNTIME_VERSION. A multi-worker slice needs a gs:// MODEL_DIR (every worker writes to it).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REMOTE_DIR = "~/flan_jax"
REMOTE_LOG_DIR = "~/flan_jax_logs"  # outside REMOTE_DIR, which a new commit's install replaces

# Accelerator family -> (size units per host of a multi-host slice, largest single-host size).
# v2-v4 and v5p count TensorCores (8 per host); v5e and v6e count chips (4 per host, and one
# host carries up to 8).
HOST_UNITS: dict[str, tuple[int, int]] = {
    "v2": (8, 8),
    "v3": (8, 8),
    "v4": (8, 8),
    "v5p": (8, 8),
    "v5litepod": (4, 8),
    "v6e": (4, 8),
}
# The runtime (VM image) each family boots by default (Cloud TPU's documented versions).
DEFAULT_RUNTIME: dict[str, str] = {
    "v2": "tpu-ubuntu2204-base",
    "v3": "tpu-ubuntu2204-base",
    "v4": "tpu-ubuntu2204-base",
    "v5p": "v2-alpha-tpuv5",
    "v5litepod": "v2-alpha-tpuv5-lite",
    "v6e": "v2-alpha-tpuv6e",
}


class LaunchError(Exception):
    """A problem the user can fix, reported as one line."""


def num_workers(accelerator_type: str) -> int:
    """Hosts of a slice: v4-8 -> 1, v4-32 -> 4, v5litepod-8 -> 1, v5litepod-16 -> 4."""
    match = re.fullmatch(r"(v\d+[a-z]*)-(\d+)", accelerator_type)
    if not match or match.group(1) not in HOST_UNITS:
        raise LaunchError(
            f"accelerator type {accelerator_type!r} is unknown; use <family>-<size> with family "
            f"one of {', '.join(HOST_UNITS)} (e.g. v4-32, v5litepod-16)"
        )
    family, size = match.group(1), int(match.group(2))
    per_host, single_host_max = HOST_UNITS[family]
    return 1 if size <= single_host_max else size // per_host


def lock_jax_version(lock_path: str) -> str:
    """The jax version pinned in a lock file (jax[tpu] is installed at the same one)."""
    with open(lock_path, encoding="utf-8") as f:
        for line in f:
            match = re.match(r"jax==([\w.]+)\s*$", line.strip())
            if match:
                return match.group(1)
    raise LaunchError(f"{lock_path} pins no jax==VERSION; regenerate it with `make lock`")


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", REPO, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True
        )
    except FileNotFoundError:
        raise LaunchError("git is not on PATH; launch/tpu.py ships `git archive HEAD`") from None
    if out.returncode:
        raise LaunchError(f"{REPO} is not a git checkout; launch/tpu.py ships `git archive HEAD`")
    return out.stdout.strip()


def tree_is_dirty() -> bool:
    out = subprocess.run(
        ["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    )
    return bool(out.stdout.strip())


# ---------------------------------------------------------------------------------------------
# The gcloud commands (pure functions of the arguments, so --dry-run and tests see them exactly).


def _gcloud_tpu(verb: str, args: argparse.Namespace) -> list[str]:
    return [
        "gcloud",
        "compute",
        "tpus",
        "tpu-vm",
        verb,
        args.name,
        f"--zone={args.zone}",
        f"--project={args.project}",
    ]


def describe_command(args: argparse.Namespace) -> list[str]:
    return _gcloud_tpu("describe", args) + ["--format=value(state,acceleratorType)"]


def create_command(args: argparse.Namespace) -> list[str]:
    cmd = _gcloud_tpu("create", args) + [
        f"--accelerator-type={args.accelerator_type}",
        f"--version={args.runtime_version}",
    ]
    return cmd + (["--spot"] if args.spot else [])


def archive_path(commit: str) -> str:
    return f"/tmp/flan_jax-{commit}.tar.gz"


def archive_command(commit: str) -> list[str]:
    return [
        "git",
        "-C",
        REPO,
        "archive",
        "--format=tar.gz",
        f"--output={archive_path(commit)}",
        "HEAD",
    ]


def scp_command(args: argparse.Namespace, commit: str) -> list[str]:
    return [
        "gcloud",
        "compute",
        "tpus",
        "tpu-vm",
        "scp",
        archive_path(commit),
        f"{args.name}:{os.path.basename(archive_path(commit))}",
        f"--zone={args.zone}",
        f"--project={args.project}",
        "--worker=all",
    ]


def install_script(commit: str, jax_version: str, python: str) -> str:
    """The shell script every worker runs; a no-op when this commit is already installed."""
    stamp = f"{REMOTE_DIR}/.installed-{commit}"
    archive = f"~/{os.path.basename(archive_path(commit))}"
    steps = [
        "set -e",
        f'if [ -f {stamp} ]; then echo "flan_jax {commit} already installed"; exit 0; fi',
        f"command -v {python} >/dev/null || (sudo apt-get update -qq && "
        f"sudo apt-get install -y -qq {python} {python}-venv)",
        f"rm -rf {REMOTE_DIR} && mkdir -p {REMOTE_DIR}",
        f"tar -xzf {archive} -C {REMOTE_DIR}",
        f"cd {REMOTE_DIR}",
        f"{python} -m venv .venv",
        ".venv/bin/pip install -q --upgrade pip",
        ".venv/bin/pip install -q -r requirements-runtime.lock",  # no torch/transformers/pytest
        f".venv/bin/pip install -q 'jax[tpu]=={jax_version}'",
        ".venv/bin/pip install -q --no-deps --no-build-isolation -e .",
        f"touch {stamp}",
        f'echo "flan_jax {commit} installed"',
    ]
    return "; ".join(steps)


def ssh_command(args: argparse.Namespace, script: str) -> list[str]:
    return _gcloud_tpu("ssh", args) + ["--worker=all", f"--command={script}"]


# The worker's index in the slice, from the TPU VM's metadata server.
_WORKER_ID = (
    "$(curl -s -H Metadata-Flavor:Google http://metadata.google.internal/computeMetadata/v1/"
    "instance/attributes/agent-worker-number || hostname)"
)


def train_script(args: argparse.Namespace, run_name: str) -> str:
    """The command every worker runs: flan-jax train with the gin args, lines prefixed."""
    env = ["TF_CPP_MIN_LOG_LEVEL=2", "PYTHONUNBUFFERED=1"]
    if args.tfds_data_dir:
        env.append(f"TFDS_DATA_DIR={shlex.quote(args.tfds_data_dir)}")
    flan = [".venv/bin/flan-jax", "train", *args.gin_args, f'--gin.MODEL_DIR="{args.model_dir}"']
    log = f"{REMOTE_LOG_DIR}/{run_name}.log"
    return (
        f"cd {REMOTE_DIR} && mkdir -p {REMOTE_LOG_DIR} && W={_WORKER_ID} && "
        f"set -o pipefail && {' '.join(env)} {shlex.join(flan)} 2>&1 "
        f'| tee {log} | sed -u "s/^/[worker $W] /"'
    )


# ---------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        usage="python launch/tpu.py [options] -- --gin_file=... [--gin.NAME=VALUE ...]",
    )
    parser.add_argument("--name", default=env("TPU_NAME"), help="TPU name ($TPU_NAME)")
    parser.add_argument("--zone", default=env("ZONE"), help="e.g. us-central2-b ($ZONE)")
    parser.add_argument("--project", default=env("PROJECT"), help="GCP project ($PROJECT)")
    parser.add_argument(
        "--accelerator_type",
        default=env("ACCELERATOR_TYPE", "v4-8"),
        help="e.g. v4-8, v4-32, v5litepod-16 ($ACCELERATOR_TYPE; default v4-8)",
    )
    parser.add_argument(
        "--runtime_version",
        default=env("RUNTIME_VERSION"),
        help="TPU VM image ($RUNTIME_VERSION; default by family, e.g. tpu-ubuntu2204-base for v4)",
    )
    parser.add_argument("--spot", action="store_true", help="create a Spot TPU")
    parser.add_argument("--model_dir", default=None, help="MODEL_DIR (gs:// for multi-worker)")
    parser.add_argument("--tfds_data_dir", default=None, help="TFDS_DATA_DIR on the workers")
    parser.add_argument("--python", default="python3.11", help="the workers' Python 3.11")
    parser.add_argument("--log_dir", default="runs/tpu_logs", help="local per-worker logs")
    parser.add_argument("--echo_all", action="store_true", help="echo every worker's lines")
    parser.add_argument("--setup_only", action="store_true", help="create/reuse and install")
    parser.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true")
    parser.add_argument("gin_args", nargs=argparse.REMAINDER, help="-- flan-jax train arguments")
    args = parser.parse_args(argv)
    args.gin_args = [a for a in args.gin_args if a != "--"]
    return args


def validate(args: argparse.Namespace) -> None:
    """Every check that needs no network; raises LaunchError with the fix."""
    for flag, var in (("name", "TPU_NAME"), ("project", "PROJECT"), ("zone", "ZONE")):
        if not getattr(args, flag):
            raise LaunchError(f"no TPU {flag}: pass --{flag}=... or set ${var}")
    args.workers = num_workers(args.accelerator_type)
    family = args.accelerator_type.split("-")[0]
    args.runtime_version = args.runtime_version or DEFAULT_RUNTIME[family]
    if args.setup_only:
        return
    if any(a.startswith("--gin.MODEL_DIR") for a in args.gin_args):
        raise LaunchError("pass MODEL_DIR as --model_dir=gs://..., not as --gin.MODEL_DIR")
    if not any(a.startswith("--gin_file") for a in args.gin_args):
        raise LaunchError(
            "no gin file: add the flan-jax train arguments after --, e.g. "
            "-- --gin_file=experiments/flan2021_t5_base.gin"
        )
    if not args.model_dir:
        raise LaunchError("no MODEL_DIR: pass --model_dir=gs://BUCKET/runs/NAME")
    if args.workers > 1 and not args.model_dir.startswith("gs://"):
        raise LaunchError(
            f"MODEL_DIR {args.model_dir!r} is not on gs://, but {args.accelerator_type} has "
            f"{args.workers} workers that must all write to it; use --model_dir=gs://BUCKET/..."
        )


def show(cmd: Sequence[str]) -> None:
    print("+ " + shlex.join(cmd), flush=True)


def create_or_reuse(args: argparse.Namespace) -> None:
    show(describe_command(args))
    found = subprocess.run(describe_command(args), capture_output=True, text=True)
    if found.returncode == 0 and found.stdout.strip():
        state, _, kind = found.stdout.strip().partition("\t")
        kind = kind.rsplit("/", 1)[-1].strip()
        if kind and kind != args.accelerator_type:
            raise LaunchError(
                f"TPU {args.name} exists as {kind}, not {args.accelerator_type}; "
                "pass its type or another --name"
            )
        print(f"reusing TPU {args.name} ({kind or args.accelerator_type}, {state})")
        if state != "READY":
            raise LaunchError(
                f"TPU {args.name} is {state}; wait for READY, or delete it "
                f"(gcloud compute tpus tpu-vm delete {args.name} --zone={args.zone})"
            )
        return
    if "NOT_FOUND" not in found.stderr and "not found" not in found.stderr.lower():
        raise LaunchError(f"gcloud describe failed: {found.stderr.strip().splitlines()[-1:]}")
    show(create_command(args))
    subprocess.run(create_command(args), check=True)


def run_and_split_logs(cmd: Sequence[str], log_dir: str, echo_all: bool) -> int:
    """Runs gcloud ssh --worker=all; splits the "[worker i] " prefixed lines into files."""
    os.makedirs(log_dir, exist_ok=True)
    files: dict[str, object] = {}
    prefix = re.compile(r"^\[worker ([^\]]+)\] ?")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            match = prefix.match(line)
            worker = match.group(1) if match else "gcloud"
            if worker not in files:
                files[worker] = open(os.path.join(log_dir, f"worker_{worker}.log"), "a")
            files[worker].write(line[match.end() :] if match else line)
            files[worker].flush()
            if echo_all or worker in ("0", "gcloud"):
                sys.stdout.write(line)
        return proc.wait()
    finally:
        for f in files.values():
            f.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        validate(args)
        if not args.dry_run and shutil.which("gcloud") is None:
            raise LaunchError(
                "gcloud is not on PATH; install the Google Cloud CLI "
                "(https://cloud.google.com/sdk/docs/install) and run `gcloud auth login`"
            )
        commit = git_commit()
        jax_version = lock_jax_version(os.path.join(REPO, "requirements-runtime.lock"))
        run_name = time.strftime("train_%Y%m%d_%H%M%S")
        install = ssh_command(args, install_script(commit, jax_version, args.python))
        train = ssh_command(args, train_script(args, run_name))
        if args.dry_run:
            print(f"# {args.accelerator_type}: {args.workers} worker(s); commit {commit}")
            print("# 1. create or reuse (create only if describe finds no TPU)")
            show(describe_command(args))
            show(create_command(args))
            print("# 2. install on every worker (skipped where this commit's stamp exists)")
            show(archive_command(commit))
            show(scp_command(args, commit))
            show(install)
            if not args.setup_only:
                print(f"# 3. train on every worker (logs: {args.log_dir}/worker_<i>.log)")
                show(train)
            return 0
        if tree_is_dirty():
            print("warning: uncommitted changes are not shipped (the workers get git HEAD)")
        create_or_reuse(args)
        for cmd in (archive_command(commit), scp_command(args, commit), install):
            show(cmd)
            subprocess.run(cmd, check=True)
        if args.setup_only:
            return 0
        show(train)
        code = run_and_split_logs(train, args.log_dir, args.echo_all)
        print(f"train finished with exit code {code}; per-worker logs in {args.log_dir}")
        return code
    except LaunchError as e:
        print(f"launch/tpu.py: error: {e}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as e:
        print(
            f"launch/tpu.py: error: `{shlex.join(e.cmd)}` exited with {e.returncode}",
            file=sys.stderr,
        )
        return e.returncode or 1


if __name__ == "__main__":
    sys.exit(main())
