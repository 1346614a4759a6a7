"""Simulates N hosts on one machine: N processes on 127.0.0.1, M virtual CPU devices each.

Each process runs the same ``flan-jax`` command, joins the job through jax.distributed (the
coordinator bound to 127.0.0.1 only) and reads its own input shard, as hosts of a TPU slice do.
Logs go to LOG_DIR/process_<i>.log; the exit code is the first non-zero one.

SIGTERM or SIGINT (Ctrl-C) to this launcher is passed on to every process as SIGTERM, as a
host's shutdown would: `flan-jax train` finishes its step, checkpoints, and exits with 75 (one
process alone may be sent SIGTERM too: its pid is printed; every process stops at the same step).

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num_processes", type=int, default=2)
    parser.add_argument("--devices_per_process", type=int, default=4)
    parser.add_argument("--log_dir", default="runs/multiprocess_logs")
    parser.add_argument("--timeout", type=float, default=1800)
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
    code = 0
    try:
        for p, log in procs:
            rc = p.wait(timeout=args.timeout)
            log.close()
            code = code or rc
    finally:
        for p, _ in procs:
            if p.poll() is None:
                p.kill()
    print(f"all processes finished, exit code {code}")
    return code


if __name__ == "__main__":
    sys.exit(main())
