"""Runs ``flan-jax train`` on one GPU host, every local GPU in the mesh.

    python launch/gpu.py --model_dir=runs/flan2021_small_nli -- \\
        --gin_file=experiments/flan2021_t5_small.gin \\
        --gin.INITIAL_CHECKPOINT_PATH=\\"ckpt/t5_1_1_small\\"

One process drives all visible GPUs (JAX sees them as one mesh; `MeshConfig.data = -1` spreads
the batch over them). The environment it sets (``--dry-run`` prints it with the command):

* XLA_FLAGS: the GPU performance flags of JAX's GPU guide (latency-hiding scheduler, collectives
  combined into larger transfers, cuBLAS rather than Triton for GEMMs) ahead of any XLA_FLAGS you
  set, so yours win; ``--xla_flags`` appends more.
* XLA_PYTHON_CLIENT_MEM_FRACTION=0.9: JAX preallocates 90% of each GPU (default 75%).
* CUDA_VISIBLE_DEVICES: passed through; ``--gpus=0,1`` sets it.
* TensorFlow stays off the GPUs: ``flan-jax`` hides them from TF before any data is read (TF only
  runs the input pipeline); TF_FORCE_GPU_ALLOW_GROWTH guards against an early grab.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence

# Each flag must exist in the pinned jaxlib: XLA aborts on an unknown one
# (tests/test_launch.py checks them against the installed jaxlib).
GPU_XLA_FLAGS: tuple[str, ...] = (
    "--xla_gpu_enable_latency_hiding_scheduler=true",
    "--xla_gpu_enable_triton_gemm=false",
    "--xla_gpu_enable_highest_priority_async_stream=true",
    "--xla_gpu_all_reduce_combine_threshold_bytes=134217728",
    "--xla_gpu_all_gather_combine_threshold_bytes=134217728",
    "--xla_gpu_reduce_scatter_combine_threshold_bytes=134217728",
)


def gpu_env(base: dict[str, str], gpus: str | None, extra_xla_flags: str = "") -> dict[str, str]:
    """The environment for the training process (``base`` plus the GPU settings)."""
    env = dict(base)
    flags = [*GPU_XLA_FLAGS, env.get("XLA_FLAGS", ""), extra_xla_flags]
    env["XLA_FLAGS"] = " ".join(f for f in flags if f)
    env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.9")
    env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.pop("JAX_PLATFORMS", None)  # a leftover JAX_PLATFORMS=cpu would hide the GPUs
    if gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpus
    return env


def train_command(model_dir: str, gin_args: Sequence[str]) -> list[str]:
    """``flan-jax train`` of this venv (the one running this script)."""
    flan = os.path.join(os.path.dirname(sys.executable), "flan-jax")
    if not os.path.exists(flan):
        flan = shutil.which("flan-jax") or "flan-jax"
    return [flan, "train", *gin_args, f'--gin.MODEL_DIR="{model_dir}"']


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        usage="python launch/gpu.py --model_dir=DIR [options] -- --gin_file=... [--gin.X=V ...]",
    )
    parser.add_argument("--model_dir", required=True, help="MODEL_DIR (local path or gs://)")
    parser.add_argument(
        "--gpus", default=None, help="CUDA_VISIBLE_DEVICES, e.g. 0,1 (default: all)"
    )
    parser.add_argument("--tfds_data_dir", default=None, help="TFDS_DATA_DIR for this run")
    parser.add_argument("--xla_flags", default="", help="more XLA flags, appended last")
    parser.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true")
    parser.add_argument("gin_args", nargs=argparse.REMAINDER, help="-- flan-jax train arguments")
    args = parser.parse_args(argv)
    gin_args = [a for a in args.gin_args if a != "--"]
    if not any(a.startswith("--gin_file") for a in gin_args):
        print(
            "launch/gpu.py: error: no gin file: add the flan-jax train arguments after --, e.g. "
            "-- --gin_file=experiments/flan2021_t5_small.gin",
            file=sys.stderr,
        )
        return 2
    if any(a.startswith("--gin.MODEL_DIR") for a in gin_args):
        print(
            "launch/gpu.py: error: pass MODEL_DIR as --model_dir, not --gin.MODEL_DIR",
            file=sys.stderr,
        )
        return 2

    env = gpu_env(dict(os.environ), args.gpus, args.xla_flags)
    if args.tfds_data_dir:
        env["TFDS_DATA_DIR"] = args.tfds_data_dir
    cmd = train_command(args.model_dir, gin_args)
    shown = ("XLA_FLAGS", "XLA_PYTHON_CLIENT_MEM_FRACTION", "CUDA_VISIBLE_DEVICES", "TFDS_DATA_DIR")
    settings = [f"{k}={shlex.quote(env[k])}" for k in shown if k in env]
    print("+ " + " ".join(settings + [shlex.join(cmd)]), flush=True)
    if args.dry_run:
        return 0
    if shutil.which("nvidia-smi"):
        subprocess.run(["nvidia-smi", "-L"], check=False)
    os.execvpe(cmd[0], cmd, env)  # replaces this process: signals and exit code are flan-jax's


if __name__ == "__main__":
    sys.exit(main())
