"""`flan-jax preflight`: will a train config fit the target devices? Compiled, never run."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys

import jax

from flan_jax import preflight
from flan_jax.cli.common import gin_config

# Set in the re-executed child (virtual CPU devices): the notes gathered by the parent.
_FALLBACK_ENV = "FLAN_JAX_PREFLIGHT_FALLBACK"
# Macros a train config requires that do not change its memory: placeholders when unset.
_UNUSED_MACROS = {
    "MODEL_DIR": "/preflight/unused",
    "MIXTURE_OR_TASK_NAME": "preflight:unused",
    "TRAIN_STEPS": 1_000_000,
}


def _train_config(args: argparse.Namespace):
    """The TrainConfig `flan-jax train` would build from the same flags (MODEL_DIR,
    MIXTURE_OR_TASK_NAME and TRAIN_STEPS may stay unset)."""
    gin_entry = gin_config(args)
    missing = {
        name: value
        for name, value in _UNUSED_MACROS.items()
        if str(gin_entry.macro(name)) == "%gin.REQUIRED"
    }
    if missing:
        gin_entry = gin_config(args, macros=missing)
    return gin_entry.build_train_config()


def cmd_preflight(args: argparse.Namespace) -> None:
    """Per-device memory of the train step on this host's devices or a `--topology`."""
    cfg = _train_config(args)
    notes: list[str] = []
    devices = None
    target = preflight.parse_topology(args.topology) if args.topology else None
    memory = args.device_memory_gb
    if target is None:
        if jax.devices()[0].platform == "cpu":
            notes.append("compiled for this host's CPU devices; --topology targets others")
    else:
        memory = target.device_memory_gib if memory is None else memory
        parent_notes = os.environ.get(_FALLBACK_ENV)  # set when this is the re-executed child
        if parent_notes is not None:
            notes = json.loads(parent_notes)
        elif target.tpu_kind:
            devices, how = preflight.tpu_topology_devices(target)
            notes.append(how)
        if devices is None:
            cpu = jax.devices("cpu")
            if len(cpu) < target.num_devices:
                if parent_notes is not None:
                    raise ValueError(
                        f"preflight: expected {target.num_devices} virtual CPU devices, got "
                        f"{len(cpu)}; XLA_FLAGS may pin another count"
                    )
                sys.exit(_reexec_on_cpu(args, target.num_devices, notes))
            devices = cpu[: target.num_devices]
            notes.append(
                f"laid out on {target.num_devices} virtual CPU devices instead: parameter, optimizer "
                "and batch bytes are exact per-device shard sizes; activations/temporaries are "
                "an estimate (CPU layouts and fusions, not the target's)"
            )
    report = preflight.preflight(
        cfg,
        devices=devices,
        compile=not args.no_compile,
        device_memory_gib=memory,
        target=target.name if target else None,
        notes=notes,
    )
    print(json.dumps(report.to_json()) if args.json else report.table())
    if args.fail_if_not_fits and report.fits is False:
        sys.exit(3)


def _reexec_on_cpu(args: argparse.Namespace, n: int, notes: list[str]) -> int:
    # XLA reads the virtual device count once, when the CPU backend starts: a fresh process.
    flags = re.sub(
        r"--xla_force_host_platform_device_count=\d+", "", os.environ.get("XLA_FLAGS", "")
    )
    env = {
        **os.environ,
        "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count={n}".strip(),
        "JAX_PLATFORMS": "cpu",
        _FALLBACK_ENV: json.dumps(notes),
    }
    argv = [sys.executable, "-m", "flan_jax.cli"]
    if args.vocab:
        argv.append(f"--vocab={args.vocab}")
    argv += ["preflight", f"--topology={args.topology}", *args.extra]
    if args.device_memory_gb is not None:
        argv.append(f"--device_memory_gb={args.device_memory_gb}")
    argv += [f for f in ("--json", "--no_compile", "--fail_if_not_fits") if getattr(args, f[2:])]
    return subprocess.run(argv, env=env, check=False).returncode
