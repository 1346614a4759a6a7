"""Simulates N hosts on one machine: N processes on 127.0.0.1, M virtual CPU devices each.

Each process runs the same ``flan-jax`` command, joins the job through jax.distributed (the
coordinator bound to 127.0.0.1 only) and reads its own input shard, as hosts of a TPU slice do.
Logs go to LOG_DIR/process_<i>.log; the exit code is the first non-zero one.

SIGTERM or SIGINT (Ctrl-C) to this launcher is passed on to every process as SIGTERM, as a
host's shutdown would: `flan-jax train` finishes its step, checkpoints, and exits with 75 (one
process alone may be sent SIGTERM too: its pid is printed; every process stops at the same step).

A process that fails (an exit code other than 0 or 75, or killed by a signal) is named at once,
and the others are stopped: the job cannot go on without one of its hosts, and they would
otherwise wait for it in their next collective. When --timeout passes (none by default), every
process still running writes its Python stacks into its log (SIGUSR1, see `flan-jax --help`)
before it is killed, and the launcher exits with 124.

    python launch/local_multiprocess.py --num_processes=2 --devices_per_process=4 -- \\
        train --gin_file=experiments/demo_smoke.gin --gin.MODEL_DIR=\\"runs/mp\\" \\
        --gin.CPU_DEVICES=None --gin.TRAIN_STEPS=20
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time

# `flan-jax train` exits with this after a SIGTERM (flan_jax.train.PREEMPTED_EXIT_CODE; not
# imported, so the launcher starts without JAX).
PREEMPTED_EXIT_CODE = 75
# How long the other processes get to stop after one failed, before they are killed.
GRACE_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num_processes", type=int, default=2)
    parser.add_argument("--devices_per_process", type=int, default=4)
    parser.add_argument("--log_dir", default="runs/multiprocess_logs")
    parser.add_argument(
        "--timeout", type=float, default=0, help="seconds before the job is stopped (0: no limit)"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- flan-jax arguments")
    args = parser.parse_args(argv)
    command = [a for a in args.command if a != "--"]
    if not command:
        parser.error("give the flan-jax command after --, e.g. -- train --gin_file=...")
    os.makedirs(args.log_dir, exist_ok=True)
    coordinator = f"127.0.0.1:{free_port()}"
    procs = []
    for i in range(args.num_processes):
        env = dict(
            os.environ,
            JAX_PLATFORMS="cpu",
            CUDA_VISIBLE_DEVICES="",
            XLA_FLAGS=f"--xla_force_host_platform_device_count={args.devices_per_process}",
            FLAN_JAX_COORDINATOR=coordinator,
            FLAN_JAX_NUM_PROCESSES=str(args.num_processes),
            FLAN_JAX_PROCESS_ID=str(i),
        )
        log = open(os.path.join(args.log_dir, f"process_{i}.log"), "w")
        cmd = [sys.executable, "-m", "flan_jax.cli", *command]
        procs.append((subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    pids = ", ".join(f"process {i}: pid {p.pid}" for i, (p, _) in enumerate(procs))
    print(
        f"started {args.num_processes} processes ({pids}; coordinator {coordinator}); "
        f"logs in {args.log_dir}",
        flush=True,
    )

    def forward(signum: int, frame: object) -> None:
        # The processes checkpoint and exit on SIGTERM; keep waiting for them, never kill them.
        for p, _ in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        code = _wait(procs, args.timeout, forward)
    finally:
        for p, log in procs:
            if p.poll() is None:
                p.kill()
            log.close()
    print(f"all processes finished, exit code {code}", flush=True)
    return code


def _describe(rc: int) -> str:
    return f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"exit code {rc}"


def _wait(procs: list, timeout: float, stop_all) -> int:
    """Waits for every process; the job's exit code (the first non-zero one, 124 on timeout)."""
    deadline = time.monotonic() + timeout if timeout > 0 else float("inf")
    failed_at, first_failure = None, 0
    while any(p.poll() is None for p, _ in procs):
        now = time.monotonic()
        if failed_at is None:
            for i, (p, _) in enumerate(procs):
                rc = p.poll()
                if rc is not None and rc not in (0, PREEMPTED_EXIT_CODE):
                    print(
                        f"process {i} failed ({_describe(rc)}; its log says why); "
                        "stopping the others",
                        flush=True,
                    )
                    failed_at, first_failure = now, _exit_status(rc)
                    stop_all(signal.SIGTERM, None)
                    break
        elif now - failed_at > GRACE_S:
            break  # the others did not stop: killed below
        if now > deadline:
            running = [i for i, (p, _) in enumerate(procs) if p.poll() is None]
            for i in running:  # their Python stacks, at the end of their logs
                procs[i][0].send_signal(signal.SIGUSR1)
            time.sleep(3)
            print(
                f"timed out after {timeout:g} s: process(es) {running} still running, killed "
                "(their Python stacks are at the end of their logs)",
                flush=True,
            )
            return 124
        time.sleep(0.2)
    code = first_failure
    for p, _ in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
        code = code or _exit_status(p.returncode)
    return code


def _exit_status(rc: int) -> int:
    return 128 - rc if rc < 0 else rc  # a shell's number for "killed by signal -rc"


if __name__ == "__main__":
    sys.exit(main())
