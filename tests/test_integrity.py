"""A MODEL_DIR is a contract: a corrupted checkpoint is skipped on resume, a diverging run never
saves a bad state, a crashed run holds only the input states of the checkpoints it keeps, and
eval refuses what never committed or no longer matches its manifest.

Reuses test_train's tiny T5 (one compile per run) and its shared initial params.
"""

import logging
import shutil

import jax
import numpy as np
import pytest
import test_train
from test_train import LENGTHS, TASK, _assert_close, _config, _params, _run

from flan_jax import checkpoints, input_pipeline, partitioning, run_dir, train, vocab
from flan_jax.evaluation import jobs

pytestmark = pytest.mark.xdist_group("train")

initial_params = test_train.initial_params  # a shared fixture (module-scoped: drawn once here)


def _largest_file(root):
    """The biggest data file under root (array data, never the manifest)."""
    files = (p for p in root.rglob("*") if p.is_file() and p.name != checkpoints.MANIFEST)
    return max(files, key=lambda p: p.stat().st_size)


def _flip(path, n=64):
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, min(len(data), len(data) // 2 + n)):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.slow
def test_resume_skips_a_truncated_checkpoint(tmp_path, initial_params, caplog):
    whole, batches = _run(tmp_path, initial_params)  # steps 2 and 4 saved
    whole_params, _ = _params(tmp_path, 4)
    victim = _largest_file(tmp_path / "4" / "state")
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="flan_jax.checkpoints"):
        result, rest = _run(tmp_path, initial_params)
    # Resumed from step 2 with its input state: the same batches and params as never stopping.
    assert rest == batches[2:] and result["loss"] == whole["loss"]
    params, data = _params(tmp_path, 4)
    _assert_close(params, whole_params, exact=True)
    assert data["input"]["batches_consumed"] == 4
    warnings = [r.getMessage() for r in caplog.records if r.name == "flan_jax.checkpoints"]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith(f"skipping corrupted checkpoint(s) in {tmp_path}: step 4 (state/")
    assert "bytes, its manifest says" in warnings[0] and warnings[0].endswith("; using step 2")
    assert "moved it to" in warnings[1] and "before saving step 4 again" in warnings[1]
    assert (tmp_path / "4.corrupted").is_dir() and checkpoints.verify(tmp_path / "4") is None


@pytest.mark.parametrize(
    "optimizer, message, saved",
    [
        # lr is 0 in step 1 (warmup), then 3e38 with weight decay: step 2's update overflows
        # while step 2's metrics (computed on step 1's state) are finite. Unguarded, the
        # non-finite state of step 2 became "the last good checkpoint".
        (
            dict(learning_rate=3e38, warmup_steps=1, weight_decay=10.0),
            "the params or optimizer state became non-finite between steps 1 and 2 (step 2's "
            "update); the last good checkpoint (step 1) is kept in",
            [1],
        ),
        # Step 2's state is finite (params ~1e38) but step 3's gradients are not: step 2 was
        # saved unchecked, so the last good checkpoint is step 1.
        (
            dict(learning_rate=1e38, warmup_steps=1),
            "loss became non-finite between steps 2 and 3 (grad_norm=nan",
            [1, 2],
        ),
    ],
    ids=["state_overflows", "next_step_diverges"],
)
def test_divergence_never_saves_a_bad_state(tmp_path, initial_params, optimizer, message, saved):
    blowup = train.optim.OptimizerConfig(name="adamw", **optimizer)
    cfg = {"optimizer": blowup, "save_every": 1, "log_every": 100}
    with pytest.raises(train.TrainingDiverged) as e:
        _run(tmp_path, initial_params, cfg=cfg)
    text = str(e.value)
    assert message in text and "\n" not in text
    assert "the last good checkpoint (step 1) is kept in" in text
    if saved == [1, 2]:
        assert "(step 2, saved just before, already diverges: do not start from it)" in text
    with checkpoints.Checkpointer(tmp_path) as ckpt:
        assert ckpt.all_steps() == saved
    params, _ = _params(tmp_path, max(saved), optimizer=blowup)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(params))


@pytest.mark.slow
def test_a_crashed_run_keeps_only_the_input_states_of_kept_checkpoints(tmp_path, initial_params):
    def crash(step, batch):
        if step == 3:
            raise RuntimeError("simulated crash")  # after 3 saves: no end-of-run pruning

    cfg = _config(
        tmp_path, initial_checkpoint_path=initial_params, save_every=1, keep_checkpoints=2
    )
    with pytest.raises(RuntimeError, match="simulated crash"):
        train.train(cfg, batch_hook=crash)
    with checkpoints.Checkpointer(tmp_path, keep=2) as ckpt:
        assert ckpt.all_steps() == [2, 3]
    assert run_dir.RunDir(tmp_path).input_state_steps() == [2, 3]


def test_eval_refuses_uncommitted_and_corrupted_checkpoints(tmp_path, initial_params):
    config = _config("/unused").model
    layout = partitioning.Layout.build(partitioning.MeshConfig(data=1), jax.devices()[:1])
    unfinished = shutil.copytree(initial_params, tmp_path / "7.orbax-checkpoint-tmp-1234")
    corrupted = shutil.copytree(initial_params, tmp_path / "params")
    _flip(_largest_file(corrupted))
    for given, error, what in [
        (unfinished, checkpoints.CheckpointNotCommitted, "is an unfinished save"),
        (corrupted, checkpoints.CheckpointCorrupted, "is corrupted ("),
    ]:
        path, _ = jobs.resolve_checkpoint(str(given))  # as `flan-jax eval` does
        with pytest.raises(error) as e:
            jobs.load_params(config, path, layout)
        assert str(e.value).startswith(f"checkpoint path {given} {what}")
        assert "\n" not in str(e.value)


def test_a_damaged_input_state_costs_time_not_the_run(tmp_path, caplog):
    def make():
        cfg = _config("/unused")
        return input_pipeline.TrainInput(
            TASK, LENGTHS, 4, cfg.model, pack=False, seed=0, vocabulary=vocab.get_vocabulary("byte")
        )

    data = make()
    for _ in range(3):
        next(data)
    position = data.save(str(tmp_path / "host0"))
    expected = next(data)
    (data_file,) = tmp_path.glob("host0.data-*")
    data_file.write_bytes(data_file.read_bytes()[:10])
    resumed = make()
    with caplog.at_level(logging.WARNING, logger="flan_jax.input_pipeline"):
        how = resumed.restore(position)
    assert how == "skipped 3 batches (the saved iterator state was unreadable)"
    assert "input state" in caplog.text and "unreadable" in caplog.text
    got = next(resumed)  # the batch an uninterrupted iterator gives next
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value)


def test_eval_of_a_model_dir_skips_a_corrupted_newest_step(tmp_path, initial_params, caplog):
    """`flan-jax eval MODEL_DIR` evaluates the newest intact step, naming the one it skips."""
    for step in (2, 4):
        shutil.copytree(initial_params, tmp_path / str(step))
    _flip(_largest_file(tmp_path / "4"))
    with caplog.at_level(logging.WARNING):
        path, step = jobs.resolve_checkpoint(str(tmp_path))
    assert (path, step) == (str(tmp_path / "2"), 2)
    assert any(
        "skipping checkpoint" in r.getMessage() and "/4" in r.getMessage() for r in caplog.records
    )
    _flip(_largest_file(tmp_path / "2"))
    with pytest.raises(checkpoints.CheckpointCorrupted, match="every checkpoint"):
        jobs.resolve_checkpoint(str(tmp_path))
