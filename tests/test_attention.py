"""The attention core's hand-written backward against autodiff of the plain composition.

`layers.dot_product_attention` computes the forward pass as written and a backward pass of its
own (transposed products, softmax row sums from the output, no [b, h, q, k] mask pass); its
gradients must be autodiff's of softmax(where(mask, q k^T + bias, -1e10)) v, including rows
that see no key at all (padding queries) and both bias shapes (shared [1, ...], per row).
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_jax.models import layers


def _reference(q, k, v, bias, mask):
    logits = jnp.einsum("bhqd,bhkd->bhqk", q, k, preferred_element_type=jnp.float32)
    if bias is not None:
        logits = logits + bias
    weights = jax.nn.softmax(jnp.where(mask, logits, -1e10), axis=-1)
    return jnp.einsum("bhqk,bhkd->bhqd", weights.astype(v.dtype), v)


def _inputs(bias_rows, seed=0, b=3, h=2, s=7, d=4):
    rng = np.random.default_rng(seed)
    q, k, v, g = (jnp.asarray(rng.normal(size=(b, h, s, d)), jnp.float32) for _ in range(4))
    bias = None if bias_rows is None else jnp.asarray(rng.normal(size=(bias_rows, h, s, s)))
    # Row 0: padded (last 2 positions invalid); row 1: packed (two segments); row 2: causal.
    valid = np.ones((b, s), bool)
    valid[0, -2:] = False
    segments = np.ones((b, s), int)
    segments[1, 4:] = 2
    mask = np.asarray(layers.attention_mask(jnp.asarray(valid), jnp.asarray(valid)))
    mask = mask & (segments[:, None, :, None] == segments[:, None, None, :])
    mask[2] &= np.tril(np.ones((s, s), bool))
    return q, k, v, bias, jnp.asarray(mask), g


@pytest.mark.parametrize("bias_rows", [None, 1, 3])
def test_gradients_equal_autodiff_of_the_composition(bias_rows):
    q, k, v, bias, mask, g = _inputs(bias_rows)
    assert not bool(jnp.any(mask[0, :, -1]))  # padding queries see nothing: the corner case
    args = (q, k, v) if bias is None else (q, k, v, bias)

    def ours(*a):
        return layers.dot_product_attention(*a[:3], a[3] if len(a) > 3 else None, mask)

    def ref(*a):
        return _reference(*a[:3], a[3] if len(a) > 3 else None, mask)

    out, vjp = jax.vjp(ours, *args)
    out_ref, vjp_ref = jax.vjp(ref, *args)
    np.testing.assert_array_equal(out, out_ref)  # the forward pass is the composition
    # A nonzero output gradient everywhere, the padding rows' included.
    names = ("q", "k", "v", "bias")[: len(args)]
    for name, a, b in zip(names, vjp(g), vjp_ref(g), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)
        assert a.shape == b.shape and a.dtype == b.dtype


def test_bfloat16_gradients_stay_close():
    q, k, v, bias, mask, g = _inputs(1, seed=1)
    q, k, v, g = (x.astype(jnp.bfloat16) for x in (q, k, v, g))
    grads = jax.vjp(lambda *a: layers.dot_product_attention(*a, mask), q, k, v, bias)[1](g)
    refs = jax.vjp(lambda *a: _reference(*a, mask), q, k, v, bias)[1](g)
    for a, b in zip(grads, refs, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(
            np.asarray(a, np.float32), np.asarray(b, np.float32), rtol=0.05, atol=0.05
        )


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_buckets,max_distance", [(32, 128), (64, 256), (128, 1024)])
def test_static_relative_position_buckets_equal_traced_and_transformers(
    bidirectional, num_buckets, max_distance
):
    """Static positions are bucketed with numpy at trace time (a constant of the step); every
    bucket must equal the traced computation's and transformers' T5 bucketing, including the
    log-spaced boundaries (exact powers, where float32 rounding could tip a bucket)."""
    torch = pytest.importorskip("torch")
    from transformers.models.t5.modeling_t5 import T5Attention

    rel = np.arange(-4500, 4500, dtype=np.int32)
    host = layers.relative_position_bucket(rel, bidirectional, num_buckets, max_distance, xp=np)
    traced = jax.jit(
        lambda r: layers.relative_position_bucket(r, bidirectional, num_buckets, max_distance)
    )(jnp.asarray(rel))
    theirs = T5Attention._relative_position_bucket(
        torch.tensor(rel, dtype=torch.long),
        bidirectional=bidirectional,
        num_buckets=num_buckets,
        max_distance=max_distance,
    ).numpy()
    assert isinstance(host, np.ndarray)
    np.testing.assert_array_equal(host, np.asarray(traced))
    np.testing.assert_array_equal(host, theirs)


def test_default_positions_give_the_same_bias_as_traced_positions():
    """The position-bias module with default (numpy) positions equals the same module fed the
    same positions as a traced array."""
    module = layers.RelativePositionBias(4, 32, 128, bidirectional=True, param_dtype=jnp.float32)
    tokens = jnp.ones((2, 300), jnp.int32)
    pos = layers.default_positions(tokens)
    assert isinstance(pos, np.ndarray)
    params = module.init(jax.random.key(0), pos, pos)
    static = jax.jit(lambda p: module.apply(p, pos, pos))(params)
    traced = jax.jit(lambda p, qp: module.apply(p, qp, qp))(params, jnp.asarray(pos))
    np.testing.assert_array_equal(np.asarray(static), np.asarray(traced))


def test_row_products_equal_the_einsums_they_replace():
    """`layers.dense` / `tokens_as_rows` (one [tokens, in] x [in, out] product) give the
    einsum's forward exactly and its gradients to float32 rounding (only the order of the sum
    over tokens in the weight gradient may differ)."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(3, 5, 4, 6)), jnp.float32)  # [b, s, h, k]
    w = jnp.asarray(rng.normal(size=(4, 6, 7)), jnp.float32)  # [h, k, d]
    g = jnp.asarray(rng.normal(size=(3, 5, 7)), jnp.float32)

    def ours(x, w):
        return layers.dense(x, w, contract=2)

    def einsum(x, w):
        return jnp.einsum("bshk,hkd->bsd", x, w)

    np.testing.assert_array_equal(jax.jit(ours)(x, w), jax.jit(einsum)(x, w))
    for a, b in zip(jax.vjp(ours, x, w)[1](g), jax.vjp(einsum, x, w)[1](g)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    assert layers.tokens_as_rows(x).shape == (15 * 4, 6)


def test_key_and_value_gradients_keep_the_key_axis_minor_on_cpu():
    """dK and dV contract the weights' query axis. Their [b, h, k, d] results must come out of
    the dot with the key axis minor (computed as [b, h, d, k]), the form XLA's CPU backend runs
    ~4x faster than the transposed-A one with head_dim minor. Without `_transposed_result`'s
    barrier, XLA's simplifier folds the final swap into the dot and restores the slow form."""
    b, h, q_len, k_len, d = 2, 2, 48, 40, 8
    rng = np.random.default_rng(0)
    q = jnp.asarray(rng.normal(size=(b, h, q_len, d)), jnp.float32)
    k, v = (jnp.asarray(rng.normal(size=(b, h, k_len, d)), jnp.float32) for _ in range(2))
    mask = jnp.ones((b, 1, q_len, k_len), bool)

    def loss(q, k, v):
        return jnp.sum(layers.dot_product_attention(q, k, v, None, mask) ** 2)

    cpu = jax.devices("cpu")[0]
    args = [jax.device_put(x, cpu) for x in (q, k, v)]
    hlo = jax.jit(jax.grad(loss, argnums=(1, 2))).lower(*args).compile().as_text()
    # Every dot producing a [b, h, k, d] or [b, h, d, k] array, with its minor-to-major layout.
    found = re.findall(r"= f32\[(\d+),(\d+),(\d+),(\d+)\]\{([\d,]+)\} dot\(", hlo)
    key_grads = [
        (dims, layout)
        for *dims, layout in found
        if sorted(int(x) for x in dims[2:]) == sorted((k_len, d))
    ]
    assert len(key_grads) == 2, found  # dK and dV
    for dims, layout in key_grads:
        minor = int(layout.split(",")[0])
        assert int(dims[minor]) == k_len, (dims, layout)
