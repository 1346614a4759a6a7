"""Meshes, logical axis rules and shardings: how arrays are laid out over devices.

This module knows meshes and the logical axis *names* models use ("batch", "embed", "mlp", ...),
never a model's internals. The layout follows T5X:

* a 3-axis mesh ("data", "fsdp", "model");
* params and activations carry logical names (``nn.with_logical_partitioning`` /
  ``nn.with_logical_constraint``); rules map them to mesh axes;
* "1d" rules shard the batch over data x fsdp and vocab/mlp/heads/joined_kv over "model";
  "fsdp" (alias "2d") rules additionally shard "embed" over "fsdp", so each param is also split
  across the data-parallel replicas of the fsdp axis (ZeRO-3 style);
* global arrays everywhere: each host feeds its local slice of the batch and the jitted step
  sees one global array.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

MESH_AXES: tuple[str, str, str] = ("data", "fsdp", "model")
# The batch dimension is split over every data-parallel axis.
BATCH_AXES: tuple[str, str] = ("data", "fsdp")
RULE_KINDS: tuple[str, ...] = ("1d", "2d", "fsdp")

# (logical name, mesh axes or None) pairs, as flax's `nn.logical_axis_rules` expects.
AxisRules = tuple[tuple[str, str | tuple[str, ...] | None], ...]


@dataclass(frozen=True)
class MeshConfig:
    """Sizes of the ("data", "fsdp", "model") mesh; one size may be -1 = the remaining devices.

    rules: "1d" (T5X 1D: params sharded over "model" only) or "fsdp" / "2d" (also "embed" over
    "fsdp").
    """

    data: int = -1
    fsdp: int = 1
    model: int = 1
    rules: str = "1d"

    def __post_init__(self) -> None:
        for name in MESH_AXES:
            size = getattr(self, name)
            if not isinstance(size, int) or isinstance(size, bool) or (size < 1 and size != -1):
                raise ValueError(
                    f"MeshConfig.{name}={size!r} is invalid; use a positive int, or -1 for "
                    "'the remaining devices'"
                )
        if sum(getattr(self, n) == -1 for n in MESH_AXES) > 1:
            raise ValueError(
                f"MeshConfig has more than one size of -1 ({self.describe()}); "
                "at most one axis may take the remaining devices"
            )
        if self.rules not in RULE_KINDS:
            raise ValueError(f"MeshConfig.rules={self.rules!r} is unknown; use one of {RULE_KINDS}")

    def describe(self) -> str:
        return " x ".join(f"{n}={getattr(self, n)}" for n in MESH_AXES)


def _resolve_sizes(cfg: MeshConfig, num_devices: int) -> tuple[int, int, int]:
    sizes = [getattr(cfg, n) for n in MESH_AXES]
    if -1 in sizes:
        known = math.prod(s for s in sizes if s != -1)
        if num_devices % known:
            fixed = " x ".join(f"{n}={s}" for n, s in zip(MESH_AXES, sizes) if s != -1)
            raise ValueError(
                f"mesh {cfg.describe()}: {num_devices} devices are not divisible by "
                f"{fixed} = {known}; set sizes whose product divides {num_devices}"
            )
        sizes[sizes.index(-1)] = num_devices // known
    if math.prod(sizes) != num_devices:
        raise ValueError(
            f"mesh {cfg.describe()} needs {math.prod(sizes)} devices but {num_devices} are "
            f"available; set sizes whose product is {num_devices} (one may be -1)"
        )
    return sizes[0], sizes[1], sizes[2]


def make_mesh(cfg: MeshConfig, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """Builds the ("data", "fsdp", "model") mesh over `devices` (default: all devices)."""
    devices = list(jax.devices() if devices is None else devices)
    shape = _resolve_sizes(cfg, len(devices))
    # Auto axis types: jax.make_mesh defaults to Explicit in this JAX, under which contracting a
    # sharded dimension raises ShardingTypeError; T5X-style partitioning wants XLA to choose.
    return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * 3, devices=devices)


def logical_axis_rules(kind: str = "1d") -> AxisRules:
    """Logical-name -> mesh-axes rules of the given kind ("1d", "2d" or "fsdp").

    flax silently replicates a name that has no rule (so a misspelt axis name in a model means
    "replicated"); the replicated names are listed anyway, so the table documents every name
    the models use.
    """
    if kind not in RULE_KINDS:
        raise ValueError(f"rules kind {kind!r} is unknown; use one of {RULE_KINDS}")
    rules: list[tuple[str, str | tuple[str, ...] | None]] = [
        ("batch", BATCH_AXES),
        ("vocab", "model"),
        ("mlp", "model"),
        ("heads", "model"),
        ("joined_kv", "model"),
    ]
    if kind in ("2d", "fsdp"):
        # flax resolves names left to right and skips a mesh axis already used by the same
        # array, so activations (batch, length, embed) keep batch on fsdp and embed falls
        # through to the replicated rule below.
        rules.append(("embed", "fsdp"))
    rules += [
        ("embed", None),
        ("length", None),
        ("kv", None),
        ("relpos_buckets", None),
    ]
    return tuple(rules)


def _check_divisible(path: str, shape: tuple[int, ...], sharding: NamedSharding) -> None:
    for dim, axes in zip(shape, sharding.spec):
        if axes is None:
            continue
        names = (axes,) if isinstance(axes, str) else tuple(axes)
        parts = math.prod(sharding.mesh.shape[a] for a in names)
        if dim % parts:
            raise ValueError(
                f"param {path} of shape {shape} cannot be split {parts} ways over "
                f"{'x'.join(names)} (spec {sharding.spec}); pick mesh sizes that divide "
                "its dimensions or change its logical axis names"
            )


def param_shardings(boxed_abstract_params: Any, mesh: Mesh, rules: AxisRules) -> Any:
    """NamedShardings for params, from their logical names.

    `boxed_abstract_params` is what `jax.eval_shape(model.init, ...)` returns (leaves boxed in
    `nn.LogicallyPartitioned`); the result has the structure of the *unboxed* tree, so it can be
    passed as `out_shardings` to a jitted init that unboxes.
    """
    specs = nn.get_partition_spec(boxed_abstract_params)
    shardings = nn.logical_to_mesh_sharding(specs, mesh, rules)
    shapes = nn.meta.unbox(boxed_abstract_params)
    for (path, leaf), sharding in zip(
        jax.tree_util.tree_flatten_with_path(shapes)[0], jax.tree.leaves(shardings)
    ):
        _check_divisible(jax.tree_util.keystr(path), tuple(leaf.shape), sharding)
    return shardings


def replicated(mesh: Mesh) -> NamedSharding:
    """A sharding that keeps a full copy on every device."""
    return NamedSharding(mesh, P())


def opt_state_shardings(
    abstract_opt_state: Any,
    abstract_params: Any,
    param_shardings: Any,
    mesh: Mesh,
    *,
    optimizer: Any | None = None,
) -> Any:
    """Shardings for an optimizer state: a leaf shaped like its param follows the param.

    Every other leaf (step counts, Adafactor's factored rank-1 `v_row`/`v_col`, placeholders) is
    replicated: deriving specs for those from the param's rank-2 spec fails, and leaving them to
    XLA replicates the whole state anyway.

    With `optimizer` given, optax's own bookkeeping (`optax.tree_map_params`) finds the param-shaped
    sub-trees; without it, any sub-tree with the params' tree structure counts as one.
    """
    abstract_params = nn.meta.unbox(abstract_params)
    rep = replicated(mesh)

    def follow_param(state_leaf: Any, param: Any, sharding: NamedSharding) -> NamedSharding:
        return sharding if tuple(state_leaf.shape) == tuple(param.shape) else rep

    if optimizer is not None:
        import optax  # local: only this path needs it

        return optax.tree_map_params(
            optimizer,
            follow_param,
            abstract_opt_state,
            abstract_params,
            param_shardings,
            transform_non_params=lambda _: rep,
        )

    params_def = jax.tree.structure(abstract_params)

    def is_params_like(node: Any) -> bool:
        return jax.tree.structure(node) == params_def

    def shard_node(node: Any) -> Any:
        if is_params_like(node):
            return jax.tree.map(follow_param, node, abstract_params, param_shardings)
        return rep

    return jax.tree.map(shard_node, abstract_opt_state, is_leaf=is_params_like)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Batch arrays: leading dimension split over data x fsdp, the rest replicated."""
    return NamedSharding(mesh, P(BATCH_AXES))


def data_parallel_size(mesh: Mesh) -> int:
    """How many ways the global batch is split (data x fsdp)."""
    return math.prod(mesh.shape[a] for a in BATCH_AXES)


def check_batch_size(global_batch: int, mesh: Mesh) -> None:
    """Fails early, with the fix, when the global batch cannot be split over data x fsdp."""
    dp = data_parallel_size(mesh)
    if global_batch < 1 or global_batch % dp:
        raise ValueError(
            f"batch size {global_batch} is not divisible by the data-parallel size {dp} "
            f"(data={mesh.shape['data']} x fsdp={mesh.shape['fsdp']}); use a multiple of {dp}"
        )


@functools.lru_cache(maxsize=16)  # called per batch by host_local_to_global; meshes are hashable
def _batch_rows_by_process(mesh: Mesh) -> dict[int, frozenset[int]]:
    """For each process, which of the data-parallel batch slices its devices hold."""
    dp = data_parallel_size(mesh)
    rows: dict[int, set[int]] = {}
    for device, index in batch_sharding(mesh).devices_indices_map((dp,)).items():
        rows.setdefault(device.process_index, set()).update(range(dp)[index[0]])
    return {p: frozenset(r) for p, r in rows.items()}


def host_shard_info(mesh: Mesh) -> tuple[int, int]:
    """(shard_index, num_shards) of this host's input shard, for `seqio.ShardInfo`.

    Hosts whose devices hold the same batch slices (model parallelism across hosts) read the
    same shard, as in T5X; with one process this is (0, 1).
    """
    by_process = _batch_rows_by_process(mesh)
    groups = sorted(set(by_process.values()), key=min)
    covered = [r for g in groups for r in g]
    if len(covered) != len(set(covered)) or len({len(g) for g in groups}) != 1:
        raise ValueError(
            f"mesh {dict(mesh.shape)} gives hosts overlapping, unequal batch slices "
            f"({[sorted(g) for g in groups]}); order devices so each host holds whole "
            "data-parallel slices"
        )
    return groups.index(by_process[jax.process_index()]), len(groups)


def host_local_to_global(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Turns this host's slice of the batch into global arrays sharded by `batch_sharding`.

    Each host passes the examples of its own input shard (see `host_shard_info`); hosts sharing
    a shard pass identical data.
    """
    sharding = batch_sharding(mesh)
    _, num_shards = host_shard_info(mesh)
    out = {}
    for name, local in batch.items():
        local = np.asarray(local)
        if local.ndim == 0:
            raise ValueError(f"batch feature {name!r} is a scalar; batch arrays need a batch dim")
        global_shape = (local.shape[0] * num_shards, *local.shape[1:])
        check_batch_size(global_shape[0], mesh)
        out[name] = jax.make_array_from_process_local_data(sharding, local, global_shape)
    return out


def init_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Joins a multi-process JAX job; call before anything touches devices.

    * all three given: explicit cluster (GPU boxes, CPU tests); the coordinator binds to exactly
      `coordinator_address` (JAX's default would listen on every interface);
    * all None: auto-detection (Cloud TPU, SLURM, ...); a plain single process stays a no-op;
    * num_processes == 1: no-op.
    """
    explicit = (coordinator_address, num_processes, process_id)
    if num_processes == 1 or jax.distributed.is_initialized():
        return
    if all(v is None for v in explicit):
        try:
            jax.distributed.initialize()
        except ValueError as e:
            # No cluster environment detected: a single local process, nothing to join.
            if "coordinator_address" not in str(e):
                raise
        except RuntimeError as e:
            # Devices are already in use, so this process runs as whatever it already is.
            if "must be called before" not in str(e):
                raise
        return
    if any(v is None for v in explicit):
        raise ValueError(
            f"init_distributed got coordinator_address={coordinator_address!r}, "
            f"num_processes={num_processes!r}, process_id={process_id!r}; give all three, "
            "or none for auto-detection"
        )
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
            coordinator_bind_address=coordinator_address,
        )
    except RuntimeError as e:
        if "must be called before" not in str(e):
            raise
        raise RuntimeError(
            "init_distributed ran after JAX had already touched the devices; call it first "
            "in main, before jax.devices(), device_put or any jit"
        ) from e


@contextlib.contextmanager
def with_sharding_rules(mesh: Mesh, rules: AxisRules) -> Iterator[None]:
    """Makes `mesh` and `rules` current, so models' `with_logical_constraint`s resolve.

    Use it around tracing/jitting the step functions.
    """
    # `jax.set_mesh` must be used as a context manager here: called bare it sets the mesh
    # globally and never restores the previous one.
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        yield


# ---------------------------------------------------------------------------------------------
# One layout per job: the mesh and the rules, built once and passed to training and evaluation.


@dataclass(frozen=True)
class Layout:
    """How a job lays arrays out: the device mesh and the logical-axis rules, together.

    Built once per job (`Layout.build`) and handed to the train loop, the evaluator, scoring and
    decoding, so no callee rebuilds the mesh or guesses the rules. Hashable, so jitted functions
    can be cached per layout.
    """

    mesh: Mesh
    rules: AxisRules

    @classmethod
    def build(cls, cfg: MeshConfig, devices: Sequence[jax.Device] | None = None) -> Layout:
        """The layout a MeshConfig describes, over `devices` (default: all devices)."""
        return cls(make_mesh(cfg, devices), logical_axis_rules(cfg.rules))

    @property
    def data_parallel_size(self) -> int:
        return data_parallel_size(self.mesh)

    def batch_unit(self, batch_size: int) -> int:
        """`batch_size` rounded up to a multiple of the data-parallel size (at least one each)."""
        dp = self.data_parallel_size
        return max(dp, math.ceil(max(batch_size, 1) / dp) * dp)

    def without_batch(self) -> Layout:
        """The layout for code that `vmap`s a model over examples.

        Inside a vmap the model's "batch" axis is the per-example option/beam axis, not the
        examples; constraining it over data x fsdp would be wrong, so it is replicated and the
        example axis keeps the sharding of the inputs.
        """
        return Layout(
            self.mesh, (("batch", None),) + tuple(r for r in self.rules if r[0] != "batch")
        )

    def param_shardings(self, boxed_abstract_params: Any) -> Any:
        """NamedShardings of params from their logical names (see `param_shardings`)."""
        return param_shardings(boxed_abstract_params, self.mesh, self.rules)

    def place(self, params: Any, boxed_abstract_params: Any) -> Any:
        """Params laid out by their logical axes (a no-op for params already there)."""
        return jax.device_put(nn.meta.unbox(params), self.param_shardings(boxed_abstract_params))

    def abstract_on_mesh(self, boxed_abstract_params: Any) -> Any:
        """ShapeDtypeStructs carrying each param's sharding (a restore target)."""
        return jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
            nn.meta.unbox(boxed_abstract_params),
            self.param_shardings(boxed_abstract_params),
        )

    def to_mesh(self, x: np.ndarray) -> jax.Array:
        """A host array with its leading (batch) dim split over data x fsdp (one process)."""
        spec = P(BATCH_AXES, *([None] * (np.ndim(x) - 1)))
        return jax.device_put(x, NamedSharding(self.mesh, spec))

    def context(self) -> contextlib.AbstractContextManager[None]:
        """Mesh and rules current, so models' logical constraints resolve (trace under it)."""
        return with_sharding_rules(self.mesh, self.rules)

    def on_mesh(self, fn: Any) -> Any:
        """`fn` called (and so traced) inside `context()`: `jax.set_mesh` cannot be entered
        under jit, so the jitted function is wrapped instead."""

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            with self.context():
                return fn(*args, **kwargs)

        return call
