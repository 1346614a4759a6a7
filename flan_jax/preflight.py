"""Preflight: will this training config fit the target devices? Answered before any allocation.

    flan-jax preflight --gin_file=train.gin --gin_file=models/t5_1_1_xl.gin \\
        --gin.TASK_FEATURE_LENGTHS='{"inputs": 512, "targets": 114}' --gin.BATCH_SIZE=64 \\
        --gin.MeshConfig.fsdp=16 --gin.MeshConfig.data=1 --gin.MeshConfig.rules=\\"fsdp\\" \\
        --topology=v4-32

The train step ``train()`` would run is lowered with abstract arguments (shapes, dtypes and the
shardings ``train()`` uses) and compiled ahead of time; nothing is materialized. Per device:

* parameters, optimizer state, batch: exact, summed over each leaf's per-device shard shape;
* activations/temporaries: the compiled executable's ``memory_analysis().temp_size_in_bytes``
  (gradients, activations kept for the backward pass, optimizer temporaries);
* total = the above + non-donated outputs + generated code.

Targets: the devices this process sees (real GPU/TPU memory numbers), or ``--topology``: a TPU
slice name (``v4-32``, ``v5e-16``, ...) is first tried through JAX's ahead-of-time topology
support (needs libtpu); without it, the step compiles for the same number of virtual CPU devices
(the CLI re-executes itself with ``XLA_FLAGS`` set). Shard sizes are then still exact, but the
CPU compiler's layouts and fusions differ from TPU's, so the temporaries are an estimate.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from flan_jax import input_pipeline, models, optim, partitioning, train, train_step

GIB = 1024**3

# TPU slice names count TensorCores for v2/v3/v4/v5p and chips for v5e/v6e. One JAX device per
# core on v2/v3, per chip elsewhere (v4/v5p run in megacore mode). HBM per JAX device, GiB.
_TPU_KINDS: dict[str, tuple[int, float, int]] = {  # name: (cores per JAX device, GiB, mesh rank)
    "v2": (1, 8.0, 2),
    "v3": (1, 16.0, 2),
    "v4": (2, 32.0, 3),
    "v5p": (2, 95.0, 3),
    "v5e": (1, 16.0, 2),
    "v5litepod": (1, 16.0, 2),
    "v6e": (1, 32.0, 2),
}
# Set by the CLI on the child it re-executes for a virtual CPU mesh (holds the parent's note).
_FALLBACK_ENV = "FLAN_JAX_PREFLIGHT_FALLBACK"


@dataclasses.dataclass(frozen=True)
class Target:
    """What to compile for: a device count, a description, and the memory of one device."""

    num_devices: int
    name: str
    device_memory_gib: float | None = None
    tpu_kind: str | None = None


def parse_topology(topology: str) -> Target:
    """``v4-32`` / ``v5e-16`` (TPU slices), ``cpu:8`` or ``8`` (that many devices)."""
    text = topology.strip().lower()
    if text.removeprefix("cpu:").isdigit():
        n = int(text.removeprefix("cpu:"))
        if n < 1:
            raise ValueError(f"--topology {topology!r}: use a positive device count")
        return Target(n, f"{n} devices")
    match = re.fullmatch(r"(v\d+[a-z]*)-(\d+)", text)
    if not match or match.group(1) not in _TPU_KINDS:
        raise ValueError(
            f"--topology {topology!r} is unknown; use a TPU slice name such as v4-32, v5e-16, "
            f"v5p-8, v6e-8 ({', '.join(_TPU_KINDS)}), or a device count such as 8 or cpu:8"
        )
    kind, cores = match.group(1), int(match.group(2))
    per_device, gib, _ = _TPU_KINDS[kind]
    if cores % per_device:
        raise ValueError(f"--topology {topology!r}: {kind} slices count {per_device} per chip")
    return Target(cores // per_device, topology, gib, kind)


def _chip_grid(n: int, rank: int) -> str:
    # The physical chip grid libtpu names topologies by, e.g. 16 chips -> "4x4" or "2x2x4".
    dims = [1] * rank
    for _ in range(int(math.log2(n))):
        dims[dims.index(min(dims))] *= 2
    if math.prod(dims) != n:
        raise ValueError(f"{n} chips do not form a power-of-two TPU grid")
    return "x".join(str(d) for d in sorted(dims))


def tpu_topology_devices(target: Target) -> tuple[list[Any] | None, str]:
    """Devices of an ahead-of-time TPU topology, or (None, why not).

    Needs libtpu (``pip install jax[tpu]``); untested here, where it is absent.
    """
    from jax.experimental import topologies

    kind = "v5e" if target.tpu_kind == "v5litepod" else target.tpu_kind
    rank = _TPU_KINDS[target.tpu_kind][2]
    try:
        name = f"{kind}:{_chip_grid(target.num_devices, rank)}"
        kwargs = {"chip_config_name": "megacore"} if rank == 3 else {}
        topo = topologies.get_topology_desc(topology_name=name, platform="tpu", **kwargs)
        return list(topo.devices), f"TPU ahead-of-time topology {name}"
    except Exception as e:  # RuntimeError without libtpu; ValueError for odd shapes
        return None, f"TPU ahead-of-time topology unavailable ({str(e).splitlines()[0]})"


# ---------------------------------------------------------------------------------------------
# The report.


@dataclasses.dataclass(frozen=True)
class PreflightReport:
    """Per-device memory of one train step on a target (bytes; temp is None if not compiled)."""

    target: str
    device_kind: str
    num_devices: int
    mesh: dict[str, int]
    rules: str
    model: str
    param_count: int
    batch_size: int
    task_feature_lengths: dict[str, int]
    optimizer: str
    param_bytes: int
    opt_state_bytes: int
    batch_bytes: int
    temp_bytes: int | None
    other_bytes: int | None
    total_bytes: int
    device_memory_bytes: int | None
    fits: bool | None
    compiled: bool
    compile_seconds: float | None
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def table(self) -> str:
        """The human-readable report."""
        lengths = ", ".join(f"{k}={v}" for k, v in self.task_feature_lengths.items())
        mesh = " x ".join(f"{k}={v}" for k, v in self.mesh.items())
        rows = [
            ("parameters", self.param_bytes),
            ("optimizer state", self.opt_state_bytes),
            ("batch", self.batch_bytes),
            ("activations/temporaries", self.temp_bytes),
            ("other (outputs, code)", self.other_bytes),
        ]
        total_label = "total" if self.compiled else "total (lower bound: not compiled)"
        lines = [
            f"model      {self.model} ({self.param_count / 1e6:,.1f}M params), "
            f"{self.optimizer}, batch {self.batch_size}, lengths {lengths}",
            f"target     {self.target}: {self.num_devices} x {self.device_kind}",
            f"mesh       {mesh}, rules {self.rules}",
            "",
            f"{'per device':<34}{'bytes':>16}{'':>4}{'size':>10}",
        ]
        for label, value in [*rows, (total_label, self.total_bytes)]:
            if label.startswith("total"):
                lines.append("-" * 64)
            shown = "n/a" if value is None else f"{value:,}"
            lines.append(f"{label:<34}{shown:>16}{'':>4}{_human(value):>10}")
        if self.device_memory_bytes is None:
            verdict = "device memory unknown: give --device_memory_gb to check the fit"
        else:
            used = self.total_bytes / self.device_memory_bytes
            answer = {True: "FITS", False: "DOES NOT FIT", None: "STATE FITS"}[self.fits]
            verdict = (
                f"{answer} in {_human(self.device_memory_bytes)} per device "
                f"({used:.0%} of it{'' if self.compiled else '; activations unknown: compile'})"
            )
        lines += ["", verdict]
        if self.compile_seconds is not None:
            lines.append(f"compiled in {self.compile_seconds:.1f}s")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _human(n: int | None) -> str:
    if n is None:
        return ""
    for unit, size in (("GiB", GIB), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


def per_device_bytes(tree: Any) -> int:
    """Bytes one device holds of a tree of sharded ShapeDtypeStructs (the largest shard)."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        shard = leaf.sharding.shard_shape(leaf.shape)
        total += math.prod(shard) * np.dtype(leaf.dtype).itemsize
    return total


def abstract_batch(cfg: train.TrainConfig, mesh: jax.sharding.Mesh) -> dict[str, Any]:
    """The global batch ``train()`` feeds, as sharded ShapeDtypeStructs (packing features too)."""
    converter = input_pipeline.feature_converter(cfg.model, cfg.pack)
    features = {k: v.dtype for k, v in converter.MODEL_FEATURES.items()}
    if cfg.pack:
        features.update(converter.PACKING_FEATURE_DTYPES)
    lengths = models.model_feature_lengths(cfg.model, cfg.task_feature_lengths)
    sharding = partitioning.batch_sharding(mesh)
    out = {}
    for name, dtype in features.items():
        length = lengths[
            "encoder_input_tokens" if name.startswith("encoder_") else "decoder_target_tokens"
        ]
        out[name] = jax.ShapeDtypeStruct(
            (cfg.batch_size, length), np.dtype(dtype.as_numpy_dtype), sharding=sharding
        )
    return out


def preflight(
    cfg: train.TrainConfig,
    *,
    devices: Sequence[Any] | None = None,
    compile: bool = True,
    device_memory_gib: float | None = None,
    target: str | None = None,
    notes: Sequence[str] = (),
) -> PreflightReport:
    """Per-device memory of ``cfg``'s train step on ``devices`` (default: all), nothing allocated.

    ``compile=False`` skips the compile (minutes for large models on CPU): parameters, optimizer
    state and batch are still exact, and a config whose total already exceeds the device memory
    is reported as not fitting. ``device_memory_gib`` defaults to the device's own limit when it
    reports one (GPU/TPU).
    """
    devices = list(jax.devices() if devices is None else devices)
    layout = partitioning.Layout.build(cfg.mesh, devices)
    mesh = layout.mesh
    partitioning.check_batch_size(cfg.batch_size, mesh)
    model = models.build_model(cfg.model)
    schedule = optim.make_schedule(cfg.optimizer, cfg.train_steps)
    tx = optim.make_optimizer(cfg.optimizer, cfg.train_steps)
    abstract, shardings, _, _ = train_step.build_state_shardings(model, tx, cfg, layout)
    batch = abstract_batch(cfg, mesh)
    param_bytes = per_device_bytes(abstract["params"])
    opt_bytes = per_device_bytes(abstract["opt_state"]) + per_device_bytes(abstract["step"])
    batch_bytes = per_device_bytes(batch)

    temp = other = seconds = None
    if compile:
        start = time.perf_counter()
        with layout.context():
            compiled = jax.jit(
                train_step.make_train_step(model, tx, cfg, schedule),
                in_shardings=(shardings, partitioning.batch_sharding(mesh)),
                out_shardings=(shardings, partitioning.replicated(mesh)),
                donate_argnums=(0,),
            )
            stats = compiled.lower(abstract, batch).compile().memory_analysis()
        seconds = time.perf_counter() - start
        temp = int(stats.temp_size_in_bytes)
        # The state is donated: only outputs that do not reuse an input buffer add memory.
        other = max(0, int(stats.output_size_in_bytes) - int(stats.alias_size_in_bytes))
        other += int(stats.generated_code_size_in_bytes)
    total = param_bytes + opt_bytes + batch_bytes + (temp or 0) + (other or 0)

    if device_memory_gib is None:
        limit = _device_limit(devices[0])
    else:
        limit = int(device_memory_gib * GIB)
    fits = None
    if limit is not None:
        # Without a compile the total is a lower bound: it can only prove a config does not fit.
        fits = total <= limit if compile else (False if total > limit else None)
    return PreflightReport(
        target=target or f"{len(devices)} local devices",
        device_kind=devices[0].device_kind,
        num_devices=len(devices),
        mesh={k: int(v) for k, v in mesh.shape.items()},
        rules=cfg.mesh.rules,
        model=models.family_of(cfg.model).report_name(cfg.model),
        param_count=models.param_count(cfg.model),
        batch_size=cfg.batch_size,
        task_feature_lengths=dict(cfg.task_feature_lengths),
        optimizer=cfg.optimizer.name,
        param_bytes=param_bytes,
        opt_state_bytes=opt_bytes,
        batch_bytes=batch_bytes,
        temp_bytes=temp,
        other_bytes=other,
        total_bytes=total,
        device_memory_bytes=limit,
        fits=fits,
        compiled=compile,
        compile_seconds=seconds,
        notes=tuple(notes),
    )


def _device_limit(device: Any) -> int | None:
    """The memory an accelerator reports; None for CPU and ahead-of-time topology devices."""
    if device.platform == "cpu":
        return None
    try:
        stats = device.memory_stats() or {}
    except Exception:  # topology devices have no runtime to ask
        return None
    return stats.get("bytes_limit")
