"""Decoding: KV cache vs recompute, beam >= greedy, top-k 1 sampling == greedy, EOS padding.

Tiny random models share shapes with tests/test_scoring.py (16-example batches, inputs 12,
targets 6), so the scorer used to rank beam outputs compiles once per run.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_scoring import (  # shared
    BATCH,
    LENGTHS,
    LM_CONFIG,
    ROWS,
    T5_CONFIG,
    host_params,
    placed,
)

from flan_jax import models, partitioning
from flan_jax.evaluation import decoding, scoring
from flan_jax.evaluation.decoding import DecodeConfig
from flan_jax.models import T5, DecoderOnly, build_model

INPUTS = [r["inputs"] for r in ROWS[::3]]  # 8 distinct prompts of different lengths


@pytest.fixture(scope="module")
def layout():
    return partitioning.Layout.build(partitioning.MeshConfig())


@pytest.fixture(scope="module", params=["t5", "decoder_only"])
def setup(request, layout):
    if request.param == "t5":
        model = build_model(T5_CONFIG)
        tok = jnp.ones((1, 4), jnp.int32)
        return model, placed(model, host_params(model, tok, tok), layout)
    model = build_model(LM_CONFIG)
    return model, placed(model, host_params(model, jnp.ones((1, 4), jnp.int32), seed=1), layout)


def _decode(setup, layout, config):
    model, params = setup
    return decoding.decode_rows(model, params, INPUTS, layout, BATCH, LENGTHS, config)


def _model_scores(setup, layout, tokens) -> np.ndarray:
    model, params = setup
    rows = [{"inputs": i, "targets": decoding.trim_at_eos(t)} for i, t in zip(INPUTS, tokens)]
    return scoring.score_rows(model, params, rows, layout, BATCH, LENGTHS, shared=False)


def _check_eos_padding(tokens: np.ndarray) -> None:
    for row in tokens.tolist():
        if 1 in row:
            assert all(t == 0 for t in row[row.index(1) + 1 :]), row


def test_cache_equals_recompute_and_sampling_top_k_1_is_greedy(setup, layout):
    greedy = _decode(setup, layout, DecodeConfig())
    assert greedy.shape == (len(INPUTS), LENGTHS["targets"])
    np.testing.assert_array_equal(_decode(setup, layout, DecodeConfig(use_cache=False)), greedy)
    if isinstance(setup[0], T5):  # one model kind is enough for the token choice itself
        top1 = _decode(setup, layout, DecodeConfig("sample", temperature=1.5, top_k=1, seed=7))
        np.testing.assert_array_equal(top1, greedy)
    _check_eos_padding(greedy)
    # Prompts differ in length: the per-example rows must not all be the same.
    assert len({tuple(r) for r in greedy.tolist()}) > 1


def test_beam_search_scores_at_least_greedy(setup, layout):
    greedy = _decode(setup, layout, DecodeConfig())
    beam = _decode(setup, layout, DecodeConfig("beam", num_beams=4, alpha=0.0))
    _check_eos_padding(beam)
    if isinstance(setup[0], DecoderOnly):  # beams reorder the vmapped per-example caches
        no_cache = _decode(
            setup, layout, DecodeConfig("beam", num_beams=4, alpha=0.0, use_cache=False)
        )
        np.testing.assert_array_equal(no_cache, beam)
    greedy_scores = _model_scores(setup, layout, greedy)
    beam_scores = _model_scores(setup, layout, beam)
    assert np.all(beam_scores >= greedy_scores - 1e-4), (beam_scores, greedy_scores)


# ----------------------------------------------------------------------------- EOS handling


def _scripted_stepper(n: int, vocab: int = 8):
    """Row r emits token 3 until step r, then EOS (1) — and would keep emitting 4 after it."""

    def logits_at(i):
        rows = jnp.arange(n)
        tok = jnp.where(i < rows, 3, jnp.where(i == rows, 1, 4))
        return jax.nn.one_hot(tok, vocab) * 10.0

    return models.Stepper(
        start=lambda: (logits_at(0), jnp.int32(0)),
        step=lambda state, tokens, i: (logits_at(i + 1), state + 1),
        reorder=lambda state, rows: state,
    )


def test_eos_stops_each_row_and_pads_with_zero():
    tokens = jax.jit(
        lambda: decoding._sample_loop(_scripted_stepper(3), 6, DecodeConfig(), jax.random.key(0))
    )()
    assert np.asarray(tokens).tolist() == [
        [1, 0, 0, 0, 0, 0],
        [3, 1, 0, 0, 0, 0],
        [3, 3, 1, 0, 0, 0],
    ]
    beam = jax.jit(
        lambda: decoding._beam_loop(_scripted_stepper(3 * 2), 6, DecodeConfig("beam", num_beams=2))
    )()
    # Beams of example e follow rows 2e, 2e + 1; the first beam's script wins.
    assert np.asarray(beam)[:, :3].tolist() == [[1, 0, 0], [3, 3, 1], [3, 3, 3]]


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(method="nucleus"), "method"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_k=-1), "top_k"),
        (dict(num_beams=0), "num_beams"),
        (dict(temperature=-1.0), "temperature"),
    ],
)
def test_bad_decode_config_one_line(kwargs, field):
    with pytest.raises(ValueError) as err:
        DecodeConfig(**kwargs)
    assert field in str(err.value) and "\n" not in str(err.value)


def test_filter_logits_top_p_keeps_the_nucleus():
    logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]]))
    kept = np.asarray(decoding.filter_logits(logits, 1.0, 0, 0.7)) > -1e8
    assert kept.tolist() == [[True, True, False, False]]
    kept = np.asarray(decoding.filter_logits(logits, 1.0, 3, 1.0)) > -1e8
    assert kept.tolist() == [[True, True, True, False]]
