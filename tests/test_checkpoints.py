"""Orbax checkpoints of global arrays: resharding restores, retention, finalization, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from flan_jax import checkpoints as ckpt
from flan_jax.partitioning import MeshConfig, make_mesh

SPECS = {
    "step": P(),
    "params": {"w": P("data", "model"), "b": P("model")},
    "opt_state": {"m": P("data", "model"), "count": P()},
}


def _mesh(data: int, model: int, n: int = 8):
    return make_mesh(MeshConfig(data=data, model=model), devices=jax.devices()[:n])


def _abstract(mesh, specs=SPECS):
    shapes = {
        "step": ((), jnp.int32),
        "params": {"w": ((8, 8), jnp.float32), "b": ((8,), jnp.float32)},
        "opt_state": {"m": ((8, 8), jnp.float32), "count": ((), jnp.int32)},
    }
    return jax.tree.map(
        lambda s, spec: jax.ShapeDtypeStruct(*s, sharding=NamedSharding(mesh, spec)),
        shapes,
        specs,
        is_leaf=lambda x: isinstance(x, tuple) and not isinstance(x, P),
    )


def _state(mesh, step: int = 7):
    values = {
        "step": jnp.array(step, jnp.int32),
        "params": {"w": jnp.arange(64.0).reshape(8, 8), "b": jnp.arange(8.0) - 3},
        "opt_state": {"m": jnp.full((8, 8), 0.5) * step, "count": jnp.array(step, jnp.int32)},
    }
    return jax.tree.map(lambda v, a: jax.device_put(v, a.sharding), values, _abstract(mesh))


def _assert_same(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """MODEL_DIR with steps 1..4 saved from a (data=2, model=4) mesh, keep=2."""
    model_dir = tmp_path_factory.mktemp("run") / "model"
    mesh = _mesh(2, 4)
    with ckpt.Checkpointer(model_dir, keep=2, async_save=True) as checkpointer:
        for step in range(1, 5):
            data = {"batches_consumed": step * 10, "shard": [0, 1], "mixture": "flan"}
            assert checkpointer.save(step, _state(mesh, step), data, meta={"model": "tiny"})
        checkpointer.wait()
        assert not checkpointer.save(4, _state(mesh, 4), {})  # already saved: no-op
    return model_dir, mesh


def test_keep_last_k(saved):
    model_dir, _ = saved
    assert sorted(p.name for p in model_dir.iterdir()) == ["3", "4"]
    with ckpt.Checkpointer(model_dir, keep=2) as checkpointer:
        assert checkpointer.all_steps() == [3, 4]
        assert checkpointer.latest_step() == 4


@pytest.mark.parametrize("data, model, n", [(4, 2, 8), (2, 4, 8), (1, 1, 1)])
def test_restore_onto_other_meshes(saved, data, model, n):
    model_dir, old_mesh = saved
    mesh = _mesh(data, model, n)
    with ckpt.Checkpointer(model_dir) as checkpointer:
        state, data_dict = checkpointer.restore(4, _abstract(mesh))
        assert checkpointer.restore_meta(4) == {"model": "tiny"}
    _assert_same(state, _state(old_mesh, 4))
    w = state["params"]["w"]
    assert w.sharding.is_equivalent_to(NamedSharding(mesh, P("data", "model")), 2)
    assert {d.id for d in w.sharding.device_set} == {d.id for d in jax.devices()[:n]}
    assert data_dict == {"batches_consumed": 40, "shard": [0, 1], "mixture": "flan"}


def test_latest_step_ignores_unfinalized(saved, tmp_path):
    model_dir, _ = saved
    # What orbax leaves behind when a save dies mid-write: its tmp dir (without commit file),
    # and, on filesystems without atomic rename, a step dir without commit_success.txt.
    (model_dir / "9.orbax-checkpoint-tmp" / "state").mkdir(parents=True)
    (model_dir / "8" / "state").mkdir(parents=True)
    try:
        with ckpt.Checkpointer(model_dir, keep=2) as checkpointer:
            assert checkpointer.latest_step() == 4
            assert checkpointer.all_steps() == [3, 4]
            with pytest.raises(FileNotFoundError, match=r"finalized steps there: \[3, 4\]"):
                checkpointer.restore(8, _abstract(_mesh(2, 4)))
    finally:
        for junk in ("9.orbax-checkpoint-tmp", "8"):
            for p in sorted((model_dir / junk).rglob("*"), reverse=True):
                p.rmdir()
            (model_dir / junk).rmdir()


def test_empty_model_dir(tmp_path):
    with ckpt.Checkpointer(tmp_path / "new" / "run", async_save=False) as checkpointer:
        assert checkpointer.latest_step() is None
        assert checkpointer.all_steps() == []


def test_restore_params_from_a_step_dir(saved):
    model_dir, old_mesh = saved
    mesh = _mesh(4, 2)
    params = ckpt.restore_params(model_dir / "3", _abstract(mesh)["params"])
    _assert_same(params, _state(old_mesh, 3)["params"])
    assert params["w"].sharding.is_equivalent_to(NamedSharding(mesh, P("data", "model")), 2)


def test_save_and_restore_params_only(tmp_path):
    mesh = _mesh(2, 4)
    params = _state(mesh)["params"]
    path = tmp_path / "imported"
    ckpt.save_params(path, params)
    other = _mesh(1, 8)
    restored = ckpt.restore_params(path, _abstract(other)["params"])
    _assert_same(restored, params)
    assert restored["b"].sharding.is_equivalent_to(NamedSharding(other, P("model")), 1)
    with pytest.raises(FileExistsError, match=r"already exists; choose a new path or pass"):
        ckpt.save_params(path, params)
    ckpt.save_params(path, params, force=True)


def test_restore_params_errors(saved, tmp_path):
    model_dir, _ = saved
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError) as e:
        ckpt.restore_params(missing, {})
    assert str(e.value).startswith(f"checkpoint path {missing} does not exist; ")
    assert "\n" not in str(e.value)
    with pytest.raises(FileNotFoundError, match=r"looks like a MODEL_DIR: pass .*/4\)"):
        ckpt.restore_params(model_dir, {})


def test_unwritable_model_dir(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(PermissionError) as e:
        ckpt.Checkpointer(blocker / "run")
    assert str(e.value).startswith(f"MODEL_DIR {blocker / 'run'} is not writable (")
    assert "\n" not in str(e.value)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"keep=0 is invalid"):
        ckpt.Checkpointer(tmp_path, keep=0)
    with ckpt.Checkpointer(tmp_path / "run", async_save=False) as checkpointer:
        with pytest.raises(TypeError, match=r"checkpoint data for step 1 is not JSON-serializable"):
            checkpointer.save(1, {"step": jnp.array(1)}, {"rng": np.zeros(2)})
        with pytest.raises(FileNotFoundError, match=r"checkpoint step 5 does not exist in"):
            checkpointer.restore(5, {})


def test_relative_model_dir_is_made_absolute(tmp_path, monkeypatch):
    # orbax refuses relative paths; users write MODEL_DIR="runs/x" all the time.

    monkeypatch.chdir(tmp_path)
    state = {"step": jnp.zeros((), jnp.int32), "params": {"w": jnp.ones((4,))}}
    with ckpt.Checkpointer("runs/rel", async_save=False) as manager:
        manager.save(1, state, {"input": {}})
        assert manager.latest_step() == 1
    assert (tmp_path / "runs" / "rel" / "1" / "commit_success.txt").exists()
