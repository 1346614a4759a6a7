"""Rank-classification scoring: hand-computed log-likelihoods, length normalization, and the
shared-encoder / shared-prompt paths against per-option scoring, on tiny random models.

Shapes (16-row batches, inputs 12 / targets 6) match tests/test_decoding.py so the compiled
scorers are shared within a pytest run.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_jax import metrics, models, partitioning
from flan_jax.evaluation import scoring
from flan_jax.models import build_model, decoder_config, t5_config

VOCAB = 259
LENGTHS = {"inputs": 12, "targets": 6}
BATCH = 16
# One layer per stack: everything under test is per-layer, and compiles are half as long.
T5_CONFIG = t5_config("tiny", vocab_size=VOCAB, num_encoder_layers=1, num_decoder_layers=1)
LM_CONFIG = decoder_config("tiny", vocab_size=VOCAB, num_layers=1)


def host_params(model: nn.Module, *args, seed: int = 0):
    """Params drawn with numpy at fan-in scale (jitting a real init is slow on CPU)."""
    boxed = jax.eval_shape(model.init, jax.random.key(0), *args)
    rng = np.random.default_rng(seed)

    def draw(leaf: nn.LogicallyPartitioned) -> jax.Array:
        shape, names = leaf.value.shape, leaf.names
        if names == ("embed",):
            value = 1.0 + 0.1 * rng.normal(size=shape)
        elif names[0] == "vocab" or (names[0] == "heads" and len(names) == 2):
            value = rng.normal(size=shape)
        else:
            fan_in = shape[0] if names[0] in ("embed", "mlp") else shape[0] * shape[1]
            value = rng.normal(size=shape) / np.sqrt(fan_in)
        return jnp.asarray(value, leaf.value.dtype)

    return jax.tree.map(
        draw, boxed["params"], is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned)
    )


def make_rows(seed: int = 0) -> list[dict]:
    """Groups of 2-4 options with inputs / targets of varied length (EOS = 1 last)."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(7):
        inputs = [int(x) for x in rng.integers(3, VOCAB, size=rng.integers(2, 11))] + [1]
        for _ in range(2 + g % 3):
            targets = [int(x) for x in rng.integers(3, VOCAB, size=rng.integers(1, 5))] + [1]
            rows.append({"inputs": inputs, "targets": targets})
    return rows


ROWS = make_rows()


def placed(model: nn.Module, params, layout: partitioning.Layout):
    """Params laid out on the layout once, as jobs.evaluate and train hand them over."""
    return layout.place(params, models.abstract_params(model.config))


@pytest.fixture(scope="module")
def layout():
    return partitioning.Layout.build(partitioning.MeshConfig())


@pytest.fixture(scope="module")
def t5(layout):
    model = build_model(T5_CONFIG)
    tok = jnp.ones((1, 4), jnp.int32)
    return model, placed(model, host_params(model, tok, tok), layout)


@pytest.fixture(scope="module")
def lm(layout):
    model = build_model(LM_CONFIG)
    return model, placed(model, host_params(model, jnp.ones((1, 4), jnp.int32), seed=1), layout)


HAND_ROWS = 32  # the hand-computed forwards pad to one shape: one compilation each


@jax.jit
def _log_softmax(logits):
    return jax.nn.log_softmax(logits, axis=-1)


def _padded(seqs: list[list[int]], length: int) -> np.ndarray:
    out = np.zeros((HAND_ROWS, length), np.int32)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out


def t5_by_hand(model, params, rows) -> tuple[np.ndarray, np.ndarray]:
    """(summed target log-prob, number of target tokens) from log_softmax of a full forward.

    Rows are zero-padded on the right: the encoder masks padding and the decoder is causal, so
    padding changes nothing at the real positions.
    """
    enc = _padded([r["inputs"] for r in rows], LENGTHS["inputs"])
    dec_in = _padded([[0, *r["targets"][:-1]] for r in rows], LENGTHS["targets"])
    forward = jax.jit(lambda p, e, d: model.apply({"params": p}, e, d))
    logp = np.asarray(_log_softmax(forward(params, enc, dec_in)))
    sums = [sum(logp[i, j, t] for j, t in enumerate(r["targets"])) for i, r in enumerate(rows)]
    return np.array(sums), np.array([len(r["targets"]) for r in rows])


def lm_by_hand(model, params, rows) -> np.ndarray:
    """seqio's prefix-LM layout built by hand: inputs + targets, marker over inputs + 1."""
    seqs = [r["inputs"] + r["targets"] for r in rows]
    width = LENGTHS["inputs"] + LENGTHS["targets"]
    dec_in = _padded([[0, *s[:-1]] for s in seqs], width)
    marker = _padded([[1] * (len(r["inputs"]) + 1) for r in rows], width)
    forward = jax.jit(lambda p, d, m: model.apply({"params": p}, d, decoder_causal_attention=m))
    logp = np.asarray(_log_softmax(forward(params, dec_in, marker)))
    out = []
    for i, (r, s) in enumerate(zip(rows, seqs)):
        out.append(sum(logp[i, j, s[j]] for j in range(len(r["inputs"]), len(s))))
    return np.array(out)


def test_t5_scores_equal_hand_computed_and_shared_equals_per_option(t5, layout):
    model, params = t5
    expected, _ = t5_by_hand(model, params, ROWS)
    naive = scoring.score_rows(model, params, ROWS, layout, BATCH, LENGTHS, shared=False)
    shared = scoring.score_rows(model, params, ROWS, layout, BATCH, LENGTHS, shared=True)
    np.testing.assert_allclose(naive, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(shared, naive, rtol=1e-5, atol=1e-5)


def test_decoder_only_shared_prompt_equals_per_option_and_hand(lm, layout):
    model, params = lm
    naive = scoring.score_rows(model, params, ROWS, layout, BATCH, LENGTHS, shared=False)
    shared = scoring.score_rows(model, params, ROWS, layout, BATCH, LENGTHS, shared=True)
    np.testing.assert_allclose(naive, lm_by_hand(model, params, ROWS), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(shared, naive, rtol=1e-5, atol=1e-5)


def test_rank_classification_picks_highest_and_length_normalization_flips(t5, layout):
    model, params = t5
    rng = np.random.default_rng(3)
    prompt = [int(x) for x in rng.integers(3, VOCAB, size=6)] + [1]
    candidates = [
        [int(x) for x in rng.integers(3, VOCAB, size=n)] + [1] for n in (1, 1, 2, 3, 4, 4, 5, 5)
    ]
    sums, lengths = t5_by_hand(
        model, params, [{"inputs": prompt, "targets": c} for c in candidates]
    )
    means = sums / lengths
    # Construct the example: a pair where the sum prefers a and the per-token mean prefers b.
    pairs = [
        (a, b)
        for a in range(len(candidates))
        for b in range(len(candidates))
        if sums[a] > sums[b] and means[b] > means[a]
    ]
    assert pairs, "no flipping pair among the candidates; change the seed"
    a, b = pairs[0]
    # Scored beside ROWS (8 groups, at most 4 options): the shapes compiled above.
    rows = ROWS + [{"inputs": prompt, "targets": candidates[i]} for i in (a, b)]
    targets = [(0, 0, True), (0, 1, False)]
    for normalize, winner in ((False, 0), (True, 1)):
        scores = scoring.score_rows(
            model, params, rows, layout, BATCH, LENGTHS, normalize=normalize
        )
        by_hand = means[[a, b]] if normalize else sums[[a, b]]
        np.testing.assert_allclose(scores[-2:], by_hand, rtol=1e-5, atol=1e-5)
        predicted, _ = metrics.rank_choices(targets, scores[-2:])
        assert predicted == [winner]
    # Over all groups: the argmax of the summed log-likelihood within each group.
    groups = scoring.group_rows(rows)
    group_targets = [
        (g, i, i == 0) for g, members in enumerate(groups) for i in range(len(members))
    ]
    flat = [scores[m] for members in groups for m in members]
    predicted, _ = metrics.rank_choices(group_targets, flat)
    assert predicted == [int(np.argmax(scores[members])) for members in groups]


def test_group_rows_by_identical_inputs():
    rows = [{"inputs": [5, 1], "targets": [1]}, {"inputs": [6, 1], "targets": [1]}]
    rows.append({"inputs": [5, 1], "targets": [7, 1]})
    assert scoring.group_rows(rows) == [[0, 2], [1]]
