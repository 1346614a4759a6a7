"""The attention core's hand-written backward against autodiff of the plain composition.

`layers.dot_product_attention` computes the forward pass as written and a backward pass of its
own (transposed products, softmax row sums from the output, no [b, h, q, k] mask pass); its
gradients must be autodiff's of softmax(where(mask, q k^T + bias, -1e10)) v, including rows
that see no key at all (padding queries) and both bias shapes (shared [1, ...], per row).
"""

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
