"""Meshes, axis rules and shardings on 8 forced CPU devices (see conftest.py)."""

import functools
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from flan_jax import partitioning as part
from flan_jax.optim import OptimizerConfig, make_optimizer

DP = ("data", "fsdp")
_NORMAL = nn.initializers.normal(1.0)


class Tiny(nn.Module):
    """A T5-shaped toy: every logical name the real models use, on tiny arrays."""

    vocab: int = 16
    embed: int = 8
    mlp: int = 16
    heads: int = 4
    kv: int = 2
    buckets: int = 4

    def _param(self, name, names, shape, init=_NORMAL):
        return self.param(name, nn.with_logical_partitioning(init, names), shape)

    @nn.compact
    def __call__(self, tokens):
        emb = self._param("embedding", ("vocab", "embed"), (self.vocab, self.embed))
        scale = self._param("norm_scale", ("embed",), (self.embed,), nn.initializers.ones)
        q = self._param("q", ("embed", "heads", "kv"), (self.embed, self.heads, self.kv))
        out = self._param("out", ("joined_kv", "embed"), (self.heads * self.kv, self.embed))
        rel = self._param("relpos", ("heads", "relpos_buckets"), (self.heads, self.buckets))
        wi = self._param("wi", ("embed", "mlp"), (self.embed, self.mlp))
        wo = self._param("wo", ("mlp", "embed"), (self.mlp, self.embed))
        logits_w = self._param("logits", ("embed", "vocab"), (self.embed, self.vocab))

        x = nn.with_logical_constraint(emb[tokens] * scale, ("batch", "length", "embed"))
        heads = jnp.einsum("ble,ehk->blhk", x, q) + rel[:, 0][:, None]
        heads = nn.with_logical_constraint(heads, ("batch", "length", "heads", "kv"))
        x = x + heads.reshape(*heads.shape[:2], -1) @ out
        h = nn.with_logical_constraint(nn.relu(x @ wi), ("batch", "length", "mlp"))
        x = x + h @ wo
        return nn.with_logical_constraint(x @ logits_w, ("batch", "length", "vocab"))


# ---------------------------------------------------------------------------------- meshes


@pytest.mark.parametrize(
    "cfg, shape",
    [
        (part.MeshConfig(), (8, 1, 1)),
        (part.MeshConfig(data=2, model=4), (2, 1, 4)),
        (part.MeshConfig(data=-1, fsdp=2, model=2), (2, 2, 2)),
        (part.MeshConfig(data=1, fsdp=-1, model=2), (1, 4, 2)),
        (part.MeshConfig(data=1, model=-1), (1, 1, 8)),
    ],
)
def test_make_mesh_shapes(cfg, shape):
    mesh = part.make_mesh(cfg)
    assert mesh.axis_names == ("data", "fsdp", "model")
    assert tuple(mesh.shape.values()) == shape
    assert mesh.axis_types == (AxisType.Auto,) * 3


def test_make_mesh_on_given_devices():
    mesh = part.make_mesh(part.MeshConfig(), devices=jax.devices()[:1])
    assert tuple(mesh.shape.values()) == (1, 1, 1)


def test_make_mesh_mismatch_errors():
    with pytest.raises(ValueError) as e:
        part.make_mesh(part.MeshConfig(data=2, fsdp=1, model=3))
    assert str(e.value) == (
        "mesh data=2 x fsdp=1 x model=3 needs 6 devices but 8 are available; "
        "set sizes whose product is 8 (one may be -1)"
    )
    with pytest.raises(ValueError, match=r"8 devices are not divisible by fsdp=1 x model=3 = 3"):
        part.make_mesh(part.MeshConfig(data=-1, model=3))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"data": 0}, r"MeshConfig.data=0 is invalid"),
        ({"model": -2}, r"MeshConfig.model=-2 is invalid"),
        ({"data": -1, "fsdp": -1}, r"more than one size of -1"),
        ({"rules": "3d"}, r"MeshConfig.rules='3d' is unknown"),
    ],
)
def test_mesh_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match) as e:
        part.MeshConfig(**kwargs)
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------------- rules

ONE_D = {
    # params
    ("vocab", "embed"): P("model", None),
    ("embed", "joined_kv"): P(None, "model"),
    ("embed", "heads", "kv"): P(None, "model", None),
    ("joined_kv", "embed"): P("model", None),
    ("heads", "kv", "embed"): P("model", None, None),
    ("embed", "mlp"): P(None, "model"),
    ("mlp", "embed"): P("model", None),
    ("heads", "relpos_buckets"): P("model", None),
    ("embed", "vocab"): P(None, "model"),
    ("embed",): P(None),
    # activations
    ("batch", "length", "embed"): P(DP, None, None),
    ("batch", "length", "heads", "kv"): P(DP, None, "model", None),
    ("batch", "length", "mlp"): P(DP, None, "model"),
    ("batch", "length", "vocab"): P(DP, None, "model"),
}

FSDP = {
    **ONE_D,
    ("vocab", "embed"): P("model", "fsdp"),
    ("embed", "joined_kv"): P("fsdp", "model"),
    ("embed", "heads", "kv"): P("fsdp", "model", None),
    ("joined_kv", "embed"): P("model", "fsdp"),
    ("heads", "kv", "embed"): P("model", None, "fsdp"),
    ("embed", "mlp"): P("fsdp", "model"),
    ("mlp", "embed"): P("model", "fsdp"),
    ("embed", "vocab"): P("fsdp", "model"),
    ("embed",): P("fsdp"),
    # batch already uses fsdp in these, so embed stays replicated (flax skips a used axis).
    ("batch", "length", "embed"): P(DP, None, None),
}


@pytest.mark.parametrize("kind, table", [("1d", ONE_D), ("fsdp", FSDP), ("2d", FSDP)])
def test_logical_axis_rules(kind, table):
    rules = part.logical_axis_rules(kind)
    for names, spec in table.items():
        assert nn.logical_to_mesh_axes(names, rules) == spec, names


def test_unknown_rules_kind():
    with pytest.raises(ValueError, match=r"rules kind 'zero3' is unknown"):
        part.logical_axis_rules("zero3")


# ---------------------------------------------------------------------- params born sharded


@functools.cache
def _born_sharded(mesh_cfg: part.MeshConfig, **dims: int):
    """eval_shape -> shardings -> jit(init, out_shardings): params are never whole anywhere."""
    mesh = part.make_mesh(mesh_cfg)
    rules = part.logical_axis_rules(mesh_cfg.rules)
    # rbg keys: threefry's init graph takes seconds to compile on a small CPU box.
    init = lambda: Tiny(**dims).init(jax.random.key(0, impl="rbg"), jnp.zeros((8, 4), int))  # noqa: E731
    boxed = jax.eval_shape(init)
    shardings = part.param_shardings(boxed, mesh, rules)
    params = jax.jit(lambda: nn.meta.unbox(init()), out_shardings=shardings)()
    return mesh, boxed, shardings, params


@pytest.mark.parametrize(
    "mesh_cfg, expect",
    [
        (
            part.MeshConfig(data=2, model=4),
            {"embedding": P("model", None), "wi": P(None, "model"), "norm_scale": P(None)},
        ),
        (
            part.MeshConfig(data=2, fsdp=2, model=2, rules="fsdp"),
            {"embedding": P("model", "fsdp"), "wi": P("fsdp", "model"), "norm_scale": P("fsdp")},
        ),
    ],
)
def test_params_born_sharded(mesh_cfg, expect):
    mesh, _, shardings, params = _born_sharded(mesh_cfg)
    for name, spec in expect.items():
        assert shardings["params"][name].spec == spec
        assert params["params"][name].sharding.is_equivalent_to(
            NamedSharding(mesh, spec), params["params"][name].ndim
        )
    # Every leaf landed where its sharding said.
    for arr, sharding in zip(jax.tree.leaves(params), jax.tree.leaves(shardings)):
        assert arr.sharding.is_equivalent_to(sharding, arr.ndim)


def test_param_shardings_reject_indivisible_dims():
    mesh = part.make_mesh(part.MeshConfig(data=2, model=4))
    boxed = jax.eval_shape(lambda: Tiny(mlp=6).init(jax.random.key(0), jnp.zeros((8, 4), int)))
    with pytest.raises(ValueError, match=r"param \['params'\]\['wi'\] of shape \(8, 6\)"):
        part.param_shardings(boxed, mesh, part.logical_axis_rules("1d"))


def test_activation_constraints_resolve_inside_with_sharding_rules():
    mesh, _, _, params = _born_sharded(part.MeshConfig(data=2, model=4))
    rules = part.logical_axis_rules("1d")
    tokens = jnp.zeros((8, 4), jnp.int32)
    with part.with_sharding_rules(mesh, rules):
        logits = jax.jit(Tiny().apply)(params, tokens)
        mlp = jax.jit(lambda x: nn.with_logical_constraint(x, ("batch", "length", "mlp")))(
            jnp.zeros((8, 4, 16))
        )
    assert logits.shape == (8, 4, 16)
    assert logits.sharding.is_equivalent_to(NamedSharding(mesh, P(DP, None, "model")), 3)
    assert mlp.sharding.is_equivalent_to(NamedSharding(mesh, P(DP, None, "model")), 3)
    # The mesh is not left set globally afterwards.
    assert jax.sharding.get_abstract_mesh().empty


def test_layout_places_params_once_and_feeds_batches():
    """What evaluation asks of a Layout: place params (a restore target or host arrays), split
    host batches, round batch sizes, and trace vmapped code without the batch rule."""
    layout = part.Layout.build(part.MeshConfig(data=2, model=4))
    assert layout == part.Layout.build(part.MeshConfig(data=2, model=4))  # jit caches key on it
    _, boxed, _, params = _born_sharded(part.MeshConfig(data=2, model=4))
    target = layout.abstract_on_mesh(boxed["params"])
    assert target["wi"].sharding.spec == P(None, "model") and target["wi"].shape == (8, 16)
    host = jax.device_get(params["params"])
    placed = layout.place(host, boxed["params"])
    assert placed["wi"].sharding.is_equivalent_to(NamedSharding(layout.mesh, P(None, "model")), 2)
    assert layout.place(placed, boxed["params"])["wi"] is placed["wi"]  # already there: no copy
    assert [layout.batch_unit(n) for n in (0, 1, 2, 3, 5)] == [2, 2, 2, 4, 6]
    batch = layout.to_mesh(np.zeros((4, 3), np.int32))
    assert batch.sharding.is_equivalent_to(NamedSharding(layout.mesh, P(DP, None)), 2)
    assert dict(layout.without_batch().rules)["batch"] is None
    assert dict(layout.without_batch().rules)["vocab"] == "model"

    @layout.on_mesh
    @jax.jit
    def constrained(x):
        return nn.with_logical_constraint(x, ("batch", "length", "mlp"))

    out = constrained(jnp.zeros((8, 4, 16)))
    assert out.sharding.is_equivalent_to(NamedSharding(layout.mesh, P(DP, None, "model")), 3)


# ------------------------------------------------------------------------ optimizer state


def _paths(tree):
    return {
        jax.tree_util.keystr(path): leaf
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    }


@pytest.mark.parametrize("name", ["adafactor", "adamw"])
def test_opt_state_shardings(name):
    # Big enough for Adafactor to factor the matrices (both dims >= 128).
    mesh, boxed, pshard, params = _born_sharded(
        part.MeshConfig(data=2, model=4), vocab=256, embed=128, mlp=256
    )
    abstract_params = nn.meta.unbox(boxed)
    opt = make_optimizer(OptimizerConfig(name=name), total_steps=10)
    abstract_state = jax.eval_shape(opt.init, abstract_params)

    shardings = part.opt_state_shardings(abstract_state, abstract_params, pshard, mesh)
    via_optax = part.opt_state_shardings(
        abstract_state, abstract_params, pshard, mesh, optimizer=opt
    )
    assert jax.tree.structure(shardings) == jax.tree.structure(via_optax)
    assert all(a == b for a, b in zip(jax.tree.leaves(shardings), jax.tree.leaves(via_optax)))

    state = jax.jit(opt.init, out_shardings=shardings)(params)
    by_path = _paths(state)
    shard_by_path = _paths(shardings)
    param_by_name = {k.split("'")[-2]: v for k, v in _paths(params).items()}
    rep = NamedSharding(mesh, P())
    checked = {"row": 0, "follow": 0}
    for path, leaf in by_path.items():
        assert leaf.sharding.is_equivalent_to(shard_by_path[path], leaf.ndim)
        param = param_by_name.get(path.split("'")[-2]) if "'" in path else None
        if ".v_row" in path or ".v_col" in path:
            assert shard_by_path[path] == rep, path
            checked["row"] += 1
        elif param is not None and leaf.shape == param.shape:
            assert leaf.sharding.is_equivalent_to(param.sharding, leaf.ndim), path
            checked["follow"] += 1
        else:
            assert shard_by_path[path] == rep, path
    if name == "adafactor":
        assert checked["row"] > 0
        # Factored second moments exist for the big matrices: v_row is a vector.
        (v_row_wi,) = [v for k, v in by_path.items() if k.endswith(".v_row['params']['wi']")]
        assert v_row_wi.shape == (128,)
    assert checked["follow"] > 0


# ------------------------------------------------------------------------------ batches


def test_batch_sharding_and_sizes():
    mesh = part.make_mesh(part.MeshConfig(data=2, fsdp=2, model=2))
    assert part.batch_sharding(mesh).spec == P(DP)
    assert part.data_parallel_size(mesh) == 4
    part.check_batch_size(8, mesh)
    with pytest.raises(ValueError) as e:
        part.check_batch_size(10, mesh)
    assert str(e.value) == (
        "batch size 10 is not divisible by the data-parallel size 4 (data=2 x fsdp=2); "
        "use a multiple of 4"
    )


def test_host_local_to_global_single_process():
    mesh = part.make_mesh(part.MeshConfig(data=2, fsdp=2, model=2))
    assert part.host_shard_info(mesh) == (0, 1)
    local = {"inputs": np.arange(40).reshape(8, 5), "mask": np.ones((8,), bool)}
    batch = part.host_local_to_global(local, mesh)
    assert batch["inputs"].shape == (8, 5) and batch["mask"].shape == (8,)
    assert batch["inputs"].sharding.is_equivalent_to(part.batch_sharding(mesh), 2)
    np.testing.assert_array_equal(np.asarray(batch["inputs"]), local["inputs"])
    # Each data-parallel slice holds 2 rows, replicated over "model".
    assert {s.data.shape for s in batch["inputs"].addressable_shards} == {(2, 5)}


def test_init_distributed_single_process_is_a_no_op():
    part.init_distributed(num_processes=1)
    part.init_distributed()  # devices are already in use: stays a single process
    assert jax.process_count() == 1
    with pytest.raises(ValueError, match=r"give all three"):
        part.init_distributed("127.0.0.1:1234", None, 0)


_WORKER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from flan_jax import partitioning as part

    port, pid = sys.argv[1], int(sys.argv[2])
    part.init_distributed(f"127.0.0.1:{port}", 2, pid)
    import jax

    # data=2 x model=4: each process holds one whole data slice -> its own shard.
    mesh = part.make_mesh(part.MeshConfig(data=2, model=4))
    info = part.host_shard_info(mesh)
    local = {"x": np.full((3, 2), pid, np.int32)}
    x = part.host_local_to_global(local, mesh)["x"]
    rows = sorted({int(s.data[0, 0]) for s in x.addressable_shards})
    # model=8 spans both processes: both read the same (only) shard.
    wide = part.make_mesh(part.MeshConfig(data=1, model=8))
    print("RESULT", pid, jax.process_count(), info, x.shape, rows, part.host_shard_info(wide))
    """
)


@pytest.mark.slow
def test_two_processes_share_or_split_shards(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(port), str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    results = sorted(line for out in outs for line in out.splitlines() if line.startswith("RESULT"))
    assert results == [
        "RESULT 0 2 (0, 2) (6, 2) [0] (0, 1)",
        "RESULT 1 2 (1, 2) (6, 2) [1] (0, 1)",
    ], outs
