"""A prefix-LM's training loss takes logits at its target positions only.

The train step of a decoder-only model computes the output layer at the positions the loss
weighs (at most `targets` per row) instead of at every position. Its loss, metrics and update
must be those of the loss over logits everywhere, on a mesh that splits the batch and the
vocabulary; a batch whose rows weigh more positions than that (packing can) takes logits
everywhere, bit for bit.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_jax import models, optim, partitioning, train_step
from flan_jax.models import losses

LENGTHS = {"inputs": 10, "targets": 6}
BATCH = 8


def _batch(seed: int, targets_per_row: list[int]) -> dict[str, np.ndarray]:
    """Prefix-LM rows of 16 tokens: 10 inputs, then `targets_per_row[i]` weighted targets, then
    padding; rows 1 and 6 hold two packed segments instead."""
    rng = np.random.default_rng(seed)
    length = sum(LENGTHS.values())
    tokens = rng.integers(2, 90, (BATCH, length)).astype(np.int32)
    weights = np.zeros((BATCH, length), np.int32)
    segments = np.ones((BATCH, length), np.int32)
    positions = np.tile(np.arange(length, dtype=np.int32), (BATCH, 1))
    for row, n in enumerate(targets_per_row):
        end = LENGTHS["inputs"] + n
        weights[row, LENGTHS["inputs"] : end] = 1
        tokens[row, end:] = 0  # padding
        segments[row, end:] = 0
    for row in (1, 6):  # two packed segments: 6 inputs + 2 targets, 5 inputs + 3 targets
        tokens[row] = rng.integers(2, 90, length)
        segments[row] = np.repeat([1, 2], 8)
        positions[row] = np.tile(np.arange(8), 2)
        weights[row] = 0
        weights[row, 6:8] = 1
        weights[row, 13:16] = 1
    return {
        "decoder_input_tokens": np.pad(tokens, ((0, 0), (1, 0)))[:, :-1],
        "decoder_target_tokens": tokens,
        "decoder_loss_weights": weights,
        "decoder_segment_ids": segments,
        "decoder_positions": positions,
        "decoder_causal_attention": (weights == 0).astype(np.int32),
    }


def _step(
    model_cfg, batch, selective: bool, monkeypatch, pack: bool = True, mesh: bool = False
) -> tuple[dict, dict]:
    """One jitted train step, on a data=4 x model=2 mesh or one device: (metrics, new params)
    on the host."""
    if not selective:
        monkeypatch.setattr(models, "logit_row_budget", lambda *a: None)
    cfg = train_step.TrainConfig(
        model_dir="/unused",
        mixture_or_task_name="unused",
        task_feature_lengths=LENGTHS,
        train_steps=10,
        batch_size=BATCH,
        model=model_cfg,
        mesh=partitioning.MeshConfig(data=4, model=2) if mesh else partitioning.MeshConfig(),
        optimizer=optim.OptimizerConfig(name="adamw", learning_rate=1e-2),
        z_loss=1e-3,
        label_smoothing=0.1,
        pack=pack,
    )
    layout = partitioning.Layout.build(cfg.mesh, jax.devices() if mesh else jax.devices()[:1])
    model = models.build_model(model_cfg)
    tx = optim.make_optimizer(cfg.optimizer, cfg.train_steps)
    schedule = optim.make_schedule(cfg.optimizer, cfg.train_steps)
    _, shardings, dummy, rng = train_step.build_state_shardings(model, tx, cfg, layout)
    with layout.context():
        params = jax.jit(
            lambda r: nn.unbox(model.init(r, **dummy)["params"]), out_shardings=shardings["params"]
        )(rng)
        state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params)}
        step = jax.jit(train_step.make_train_step(model, tx, cfg, schedule))
        new_state, metrics = step(state, jax.device_put(batch))
    monkeypatch.undo()
    return jax.device_get(metrics), jax.device_get(new_state["params"])


@pytest.mark.parametrize(
    "family,pack,mesh",
    [("llama", True, True), ("gemma", False, False), ("decoder", True, False)],
    ids=["untied-packed-mesh", "tied-unpacked", "t5_style-packed"],
)
def test_loss_at_the_target_rows_equals_the_loss_everywhere(family, pack, mesh, monkeypatch):
    """Packed, the step checks the budget at run time; unpacked it relies on seqio's trimming.
    On the mesh the batch and the vocabulary are split."""
    config = models.preset(family, "tiny", vocab_size=98, num_layers=1, dropout_rate=0.1)
    assert models.logit_row_budget(config, LENGTHS) == LENGTHS["targets"]
    batch = _batch(0, [6, 0, 3, 6, 1, 5, 0, 2])
    assert bool(losses.loss_rows(jnp.asarray(batch["decoder_loss_weights"]), 6)[1])  # it fits
    m_sel, p_sel = _step(config, batch, True, monkeypatch, pack, mesh)
    m_all, p_all = _step(config, batch, False, monkeypatch, pack, mesh)
    for key in ("loss", "z_loss", "accuracy", "target_tokens", "grad_norm"):
        np.testing.assert_allclose(m_sel[key], m_all[key], rtol=2e-6, err_msg=key)
    for a, b in zip(jax.tree.leaves(p_sel), jax.tree.leaves(p_all), strict=True):
        # AdamW divides by |g|: where a gradient is ~0, its rounding moves the update (lr 1e-2).
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=5e-5)


def test_rows_over_the_budget_take_logits_everywhere(monkeypatch):
    """Packing can put more than `targets` weighted positions in a row: the step then computes
    what the loss over every position computes (its own branch of the same program)."""
    config = models.preset("llama", "tiny", vocab_size=98, num_layers=1)
    batch = _batch(1, [6, 6, 6, 6, 6, 6, 6, 6])
    batch["decoder_loss_weights"][3, 2:] = 1  # 14 weighted positions in one row
    assert not bool(losses.loss_rows(jnp.asarray(batch["decoder_loss_weights"]), 6)[1])
    m_sel, p_sel = _step(config, batch, True, monkeypatch)
    m_all, p_all = _step(config, batch, False, monkeypatch)
    for key in ("loss", "z_loss", "accuracy", "grad_norm"):
        np.testing.assert_array_equal(m_sel[key], m_all[key], err_msg=key)
    for a, b in zip(jax.tree.leaves(p_sel), jax.tree.leaves(p_all), strict=True):
        np.testing.assert_array_equal(a, b)


def test_loss_rows_selects_weighted_positions_in_order():
    weights = jnp.array([[0, 1, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0]])
    rows, fits = losses.loss_rows(weights, 3)
    np.testing.assert_array_equal(rows, [[1, 3, 4], [0, 1, 2], [0, 1, 2]])
    assert not bool(fits)  # the last row weighs 4 positions
    assert bool(losses.loss_rows(weights, 4)[1])
    assert losses.loss_rows(weights, 9)[0].shape == (3, 6)  # never more than the row


def test_only_prefix_lm_families_select_rows():
    assert models.logit_row_budget(models.preset("t5", "tiny"), LENGTHS) is None
    assert models.preset("gemma", "tiny").tie_word_embeddings  # the tied head is covered
    llama = models.preset("llama", "tiny")
    assert models.logit_row_budget(llama, {"inputs": 0, "targets": 8}) is None  # all targets
    hidden = jnp.ones((2, 3, llama.d_model))
    params = models.abstract_params(dataclasses.replace(llama, vocab_size=32))
    logits = jax.eval_shape(
        lambda p: models.head_logits(
            dataclasses.replace(llama, vocab_size=32), nn.unbox(p), hidden
        ),
        params,
    )
    assert logits.shape == (2, 3, 32) and logits.dtype == jnp.float32
