"""Orbax checkpoints of global arrays: resharding restores, retention, finalization, errors,
integrity (manifests, corrupted and uncommitted checkpoints)."""

import json
import shutil

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


# ---------------------------------------------------------------------------------------------
# Integrity: manifests, corrupted and uncommitted checkpoints.


def _copy(saved, tmp_path):
    """A private copy of the `saved` MODEL_DIR (steps 3 and 4), free to damage."""
    model_dir, _ = saved
    return shutil.copytree(model_dir, tmp_path / "model")


def _array_file(step_dir):
    """The biggest array-data file of a step (OCDBT data under state/)."""
    return max((p for p in (step_dir / "state").rglob("*") if p.is_file()), key=_size)


def _size(path):
    return path.stat().st_size


def _truncate(path):
    path.write_bytes(path.read_bytes()[: _size(path) // 2])


def _flip(path, n=64):
    data = bytearray(path.read_bytes())
    start = max(0, len(data) // 2 - n // 2)
    for i in range(start, min(len(data), start + n)):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_every_committed_step_has_a_manifest(saved):
    model_dir, _ = saved
    for step in (3, 4):
        manifest = json.loads((model_dir / str(step) / ckpt.MANIFEST).read_text())
        assert {"commit_success.txt", "state/_METADATA", "data/metadata"} <= set(manifest["files"])
        assert ckpt.verify(model_dir / str(step)) is None


@pytest.mark.parametrize("damage", [_truncate, _flip], ids=["truncated", "flipped"])
def test_corrupted_latest_step_is_skipped_with_one_warning(saved, tmp_path, caplog, damage):
    model_dir = _copy(saved, tmp_path)
    damage(_array_file(model_dir / "4"))
    with ckpt.Checkpointer(model_dir, keep=2) as checkpointer:
        assert checkpointer.all_steps() == [3, 4]
        assert checkpointer.latest_step() == 3
        assert checkpointer.latest_step() == 3  # warned once
        with pytest.raises(ckpt.CheckpointCorrupted) as e:
            checkpointer.restore(4, _abstract(_mesh(2, 4)))
        state, _ = checkpointer.restore(3, _abstract(_mesh(2, 4)))
    _assert_same(state, _state(_mesh(2, 4), 3))
    assert "\n" not in str(e.value) and f"checkpoint step 4 in {model_dir} is corrupted" in str(
        e.value
    )
    assert ("bytes, its manifest says" if damage is _truncate else "CRC32") in str(e.value)
    warnings = [r.getMessage() for r in caplog.records if r.name == "flan_jax.checkpoints"]
    assert len(warnings) == 1
    assert "skipping corrupted checkpoint(s)" in warnings[0] and "step 4 (state/" in warnings[0]
    assert warnings[0].endswith("; using step 3")


def test_a_sizes_only_manifest_catches_truncation_not_flips(saved, tmp_path):
    # What object stores get (no read-back of the whole checkpoint at every save).
    model_dir = _copy(saved, tmp_path)
    ckpt.write_manifest(model_dir / "4", checksums=False)
    manifest = json.loads((model_dir / "4" / ckpt.MANIFEST).read_text())
    assert manifest["checksum"] == "size"
    assert all(crc is None for _, crc in manifest["files"].values())
    _flip(_array_file(model_dir / "4"))
    assert ckpt.verify(model_dir / "4") is None
    _truncate(_array_file(model_dir / "4"))
    assert "bytes, its manifest says" in ckpt.verify(model_dir / "4")


def test_every_step_corrupted_is_an_error(saved, tmp_path):
    model_dir = _copy(saved, tmp_path)
    for step in (3, 4):
        _flip(_array_file(model_dir / str(step)))
    with ckpt.Checkpointer(model_dir, keep=2) as checkpointer:
        with pytest.raises(ckpt.CheckpointCorrupted, match=r"every checkpoint in .* corrupted"):
            checkpointer.latest_step()
        assert checkpointer.latest_step(before=4) is None  # the NaN guard's question: no raise


def test_a_step_without_manifest_is_used_with_a_warning(saved, tmp_path, caplog):
    # Saved before manifests existed, or the trainer died between orbax's commit and ours.
    model_dir = _copy(saved, tmp_path)
    (model_dir / "4" / ckpt.MANIFEST).unlink()
    with ckpt.Checkpointer(model_dir, keep=2) as checkpointer:
        assert checkpointer.latest_step() == 4
        state, _ = checkpointer.restore(4, _abstract(_mesh(2, 4)))
    _assert_same(state, _state(_mesh(2, 4), 4))
    warnings = [r.getMessage() for r in caplog.records if r.name == "flan_jax.checkpoints"]
    assert len(warnings) == 1 and "step 4" in warnings[0] and "no integrity manifest" in warnings[0]
    assert not (model_dir / "4" / ckpt.MANIFEST).exists()  # never sealed after the fact


def test_live_steps_bound_what_a_crash_leaves(tmp_path):
    # The input states a trainer keeps: committed steps on disk and the save in flight, so a
    # crash leaves at most keep + 1 of them.
    mesh = _mesh(2, 4)
    model_dir = tmp_path / "run"
    with ckpt.Checkpointer(model_dir, keep=2, async_save=True) as checkpointer:
        for step in range(1, 6):
            checkpointer.save(step, _state(mesh, step), {})
            live = checkpointer.live_steps()
            on_disk = {int(p.name) for p in model_dir.iterdir() if p.name.isdigit()}
            assert step in live and on_disk <= set(live) and len(live) <= 3
        checkpointer.wait()
        assert checkpointer.live_steps() == [4, 5]
        assert all(ckpt.has_manifest(model_dir / str(s)) for s in (4, 5))


def test_saving_a_corrupted_step_again_moves_it_aside(saved, tmp_path):
    # A run that resumed before a corrupted step writes that step again.
    model_dir = _copy(saved, tmp_path)
    _truncate(_array_file(model_dir / "4"))
    mesh = _mesh(2, 4)
    with ckpt.Checkpointer(model_dir, keep=2) as checkpointer:
        assert checkpointer.latest_step() == 3
        assert checkpointer.save(4, _state(mesh, 5), {"batches_consumed": 50})
        checkpointer.wait()
        assert checkpointer.latest_step() == 4
        state, data = checkpointer.restore(4, _abstract(mesh))
    _assert_same(state, _state(mesh, 5))
    assert data == {"batches_consumed": 50}
    assert (model_dir / "4.corrupted" / "state").is_dir()
    assert ckpt.verify(model_dir / "4") is None


def test_restore_params_refuses_uncommitted_and_corrupted_paths(saved, tmp_path):
    model_dir = _copy(saved, tmp_path)
    target = _abstract(_mesh(4, 2))["params"]
    tmp = shutil.copytree(model_dir / "4", model_dir / "5.orbax-checkpoint-tmp-1234")
    no_commit = shutil.copytree(model_dir / "4", model_dir / "6")
    (no_commit / "commit_success.txt").unlink()
    _flip(_array_file(model_dir / "4"))
    cases = [
        (tmp, ckpt.CheckpointNotCommitted, "is an unfinished save (orbax's temporary directory)"),
        (tmp / "state", ckpt.CheckpointNotCommitted, "is an unfinished save"),
        (no_commit, ckpt.CheckpointNotCommitted, "was never committed (no commit_success.txt"),
        (model_dir / "4", ckpt.CheckpointCorrupted, "is corrupted (state/"),
    ]
    for path, error, what in cases:
        with pytest.raises(error) as e:
            ckpt.restore_params(path, target)
        message = str(e.value)
        assert message.startswith(f"checkpoint path {path} {what}") and "\n" not in message
    assert issubclass(ckpt.CheckpointNotCommitted, FileNotFoundError)
    assert issubclass(ckpt.CheckpointCorrupted, ValueError)
    assert "pass another step (committed: [3])" in message
    with pytest.raises(ckpt.CheckpointNotCommitted, match=r"pass .*/4 \(committed steps: \[3, 4\]"):
        ckpt.restore_params(tmp, target)
    params = ckpt.restore_params(model_dir / "3", target)  # the intact step still restores
    _assert_same(params, _state(_mesh(2, 4), 3)["params"])


def test_params_only_checkpoints_carry_a_manifest(tmp_path):
    mesh = _mesh(2, 4)
    path = tmp_path / "imported"
    ckpt.save_params(path, _state(mesh)["params"])
    assert ckpt.has_manifest(path) and ckpt.verify(path) is None
    _flip(max((p for p in path.rglob("*") if p.is_file() and p.name != ckpt.MANIFEST), key=_size))
    with pytest.raises(ckpt.CheckpointCorrupted, match=r"restore its files from a copy$"):
        ckpt.restore_params(path, _abstract(mesh)["params"])


def test_all_finite():
    good = {"w": jnp.ones((4, 4)), "count": jnp.array(3, jnp.int32), "h": jnp.ones(2, jnp.bfloat16)}
    assert ckpt.all_finite(good)
    assert not ckpt.all_finite({**good, "w": good["w"].at[1, 2].set(jnp.inf)})
    assert not ckpt.all_finite({**good, "h": jnp.array([1.0, jnp.nan], jnp.bfloat16)})
