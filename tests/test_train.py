"""The partitioned trainer on 8 CPU devices: mesh equivalence, resumption, resharding, errors.

Compiles are the cost here: one tiny T5, short sequences, few steps; the initial params are
created once and shared through INITIAL_CHECKPOINT_PATH (which also tests fine-tuning starts).
"""

import hashlib

import jax
import numpy as np
import pytest

from flan_jax import checkpoints, models, partitioning, train, train_step
from flan_jax.models import t5_config

pytestmark = pytest.mark.xdist_group("train")

LENGTHS = {"inputs": 48, "targets": 8}
TASK = "demo:compare:t0"


def _config(model_dir, mesh=None, steps=4, **kw):
    fields = dict(
        model_dir=str(model_dir),
        mixture_or_task_name=TASK,
        task_feature_lengths=LENGTHS,
        train_steps=steps,
        batch_size=8,
        model=t5_config("tiny", vocab_size=384, num_encoder_layers=1, num_decoder_layers=1),
        mesh=mesh or partitioning.MeshConfig(data=8),
        save_every=2,
        log_every=1,
        progress_bar=False,
        async_checkpoint=False,
        pack=False,
    )
    return train.TrainConfig(**{**fields, **kw})


@pytest.fixture(scope="module")
def initial_params(tmp_path_factory):
    """Random tiny-T5 params drawn once (numpy over eval_shape: no slow init compile)."""
    cfg = _config("/unused")
    model = models.build_model(cfg.model)
    tx = train.optim.make_optimizer(cfg.optimizer, cfg.train_steps)
    layout = partitioning.Layout.build(partitioning.MeshConfig(data=1), jax.devices()[:1])
    abstract, _, _, _ = train_step.build_state_shardings(model, tx, cfg, layout)
    rng = np.random.default_rng(0)
    params = jax.tree.map(
        lambda a: (rng.standard_normal(a.shape) * 0.05).astype(a.dtype), abstract["params"]
    )
    path = tmp_path_factory.mktemp("init") / "params"
    checkpoints.save_params(path, params)
    return str(path)


def _run(model_dir, initial, mesh=None, devices=None, cfg=None, **kw):
    """One train() call; returns (result, fingerprints of the batches it consumed)."""
    seen = []

    def hook(step, batch):
        seen.append(hashlib.sha1(batch["encoder_input_tokens"].tobytes()).hexdigest())

    config = _config(model_dir, mesh, initial_checkpoint_path=initial, **(cfg or {}))
    return train.train(config, devices=devices, batch_hook=hook, **kw), seen


def _params(model_dir, step, **kw):
    """Params and input position of a checkpoint, restored onto one device."""
    cfg = _config(model_dir, **kw)
    model = models.build_model(cfg.model)
    tx = train.optim.make_optimizer(cfg.optimizer, cfg.train_steps)
    layout = partitioning.Layout.build(partitioning.MeshConfig(data=1), jax.devices()[:1])
    abstract, _, _, _ = train_step.build_state_shardings(model, tx, cfg, layout)
    with checkpoints.Checkpointer(model_dir) as ckpt:
        state, data = ckpt.restore(step, abstract)
    return jax.device_get(state["params"]), data


def _assert_close(a, b, exact=False):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if exact:
            np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-5)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, initial_params):
    """The uninterrupted 4-step run on data=8, shared by the tests below."""
    model_dir = tmp_path_factory.mktemp("reference")
    result, batches = _run(model_dir, initial_params)
    params, data = _params(model_dir, 4)
    return {"result": result, "batches": batches, "params": params, "data": data}


@pytest.mark.parametrize(
    "name, mesh, n_devices",
    [
        ("1x1", partitioning.MeshConfig(data=1), 1),
        ("data2_model4", partitioning.MeshConfig(data=2, model=4), 8),
        ("fsdp8", partitioning.MeshConfig(data=1, fsdp=8, rules="fsdp"), 8),
    ],
)
@pytest.mark.slow
def test_same_training_on_every_mesh(tmp_path, initial_params, reference, name, mesh, n_devices):
    result, batches = _run(tmp_path, initial_params, mesh, devices=jax.devices()[:n_devices])
    assert batches == reference["batches"]
    np.testing.assert_allclose(result["loss"], reference["result"]["loss"], rtol=1e-4)
    params, _ = _params(tmp_path, 4)
    _assert_close(params, reference["params"])


@pytest.mark.slow
def test_resume_sees_the_same_batches_and_ends_with_the_same_params(
    tmp_path, initial_params, reference
):
    first, first_batches = _run(tmp_path, initial_params, stop_after=2)
    assert first["step"] == 2
    rest, rest_batches = _run(tmp_path, initial_params)
    assert first_batches + rest_batches == reference["batches"]
    assert rest["loss"] == reference["result"]["loss"]
    params, data = _params(tmp_path, 4)
    _assert_close(params, reference["params"], exact=True)
    assert data["input"]["batches_consumed"] == 4
    # A finished run is reused, not retrained.
    again, again_batches = _run(tmp_path, initial_params)
    assert again == {"step": 4, "finished": True} and again_batches == []


@pytest.mark.slow
def test_resume_on_another_mesh(tmp_path, initial_params, reference):
    _run(tmp_path, initial_params, stop_after=2)
    _run(tmp_path, initial_params, mesh=partitioning.MeshConfig(data=2, model=4))
    params, _ = _params(tmp_path, 4)
    _assert_close(params, reference["params"])


@pytest.mark.slow
def test_gradient_accumulation_matches_full_batch(tmp_path, initial_params, reference):
    _run(tmp_path, initial_params, cfg={"microbatches": 2})
    params, _ = _params(tmp_path, 4)
    _assert_close(params, reference["params"])


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            {"mesh": partitioning.MeshConfig(data=3)},
            ValueError,
            "needs 3 devices but 8 are available",
        ),
        (
            {"batch_size": 12, "mesh": partitioning.MeshConfig(data=8)},
            ValueError,
            "batch size 12 is not divisible by the data-parallel size 8",
        ),
        ({"mixture_or_task_name": "demo:nope:mix"}, Exception, "unknown task 'demo:nope:mix'"),
        ({"model_dir": "/proc/flan_jax_unwritable"}, Exception, "/proc/flan_jax_unwritable"),
        (
            {"model": t5_config("tiny", vocab_size=128)},
            ValueError,
            "model vocab_size 128 is smaller than the task vocabulary's 259",
        ),
    ],
)
def test_bad_input_is_one_line(tmp_path, kwargs, error, message):
    base = dict(
        model_dir=str(tmp_path / "run"),
        mixture_or_task_name=TASK,
        task_feature_lengths=LENGTHS,
        train_steps=1,
        batch_size=8,
        model=t5_config("tiny", vocab_size=384),
    )
    with pytest.raises(error) as e:
        train.train(train.TrainConfig(**{**base, **kwargs}))
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_config_validation():
    with pytest.raises(
        ValueError, match="TrainConfig.microbatches=3 is invalid; it must divide batch_size=8"
    ):
        _config("/x", microbatches=3)
    with pytest.raises(ValueError, match="task_feature_lengths"):
        train.TrainConfig("/x", TASK, {"inputs": 8}, 1)


@pytest.mark.slow
def test_periodic_eval_writes_reports(tmp_path, initial_params):
    cfg = {"eval_every": 2, "eval_mixture": "demo:compare:t0:rank", "eval_batch_size": 16}
    _run(tmp_path, initial_params, cfg=cfg)
    examples = tmp_path / "eval" / "step_2" / "examples" / "validation"
    assert [p.name for p in examples.iterdir()] == ["demo_compare_t0_rank.jsonl"] or any(
        "compare" in p.name for p in examples.iterdir()
    )
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "train").iterdir())


def test_nan_guard_stops_and_keeps_the_last_good_checkpoint(tmp_path, initial_params):
    # An absurd learning rate: step 1 is computed on good weights (and saved), then the
    # weights blow up and step 2's loss is not finite.
    blowup = train.optim.OptimizerConfig(name="adamw", learning_rate=1e38)
    with pytest.raises(train.TrainingDiverged) as e:
        _run(tmp_path, initial_params, cfg={"optimizer": blowup, "save_every": 1})
    message = str(e.value)
    assert "loss became non-finite between steps 1 and 2" in message and "\n" not in message
    with checkpoints.Checkpointer(tmp_path) as ckpt:
        assert ckpt.latest_step() == 1  # the last good checkpoint stays "latest"
    params, _ = _params(tmp_path, 1, optimizer=blowup)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(params))
