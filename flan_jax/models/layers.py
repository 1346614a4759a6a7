"""Building blocks shared by T5 and the decoder-only LM (Flax Linen).

Conventions (T5 1.1 / T5X):
  * no biases anywhere; RMSNorm without mean subtraction or bias, pre-norm residual blocks;
  * attention logits are NOT scaled by 1/sqrt(head_dim): the scale is folded into the query
    initializer instead (stddev (d_model * head_dim) ** -0.5), so checkpoints stay interchangeable;
  * every parameter is created through `nn.with_logical_partitioning` with T5X logical axis names,
    and key activations carry `nn.with_logical_constraint` (no-ops without a mesh and rules);
  * params live in `param_dtype`, activations in `dtype`; norms, softmax and logits run in fp32.

Masks are boolean `[batch, 1, q_len, k_len]` (True = may attend); relative position biases are
float32 `[batch or 1, heads, q_len, k_len]`. They stay separate so the common unpacked case keeps
the position bias at batch 1 and lets XLA broadcast it inside the softmax fusion.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Initializer = Callable[..., Array]

# Large negative logit for masked keys; fp32 so it never overflows (attention math is fp32).
_MASKED = -1e10


def _param(
    module: nn.Module,
    name: str,
    init: Initializer,
    axes: tuple[str, ...],
    shape: tuple[int, ...],
    param_dtype: jnp.dtype,
) -> Array:
    """A parameter boxed with its logical axes (unboxed on read)."""
    return module.param(name, nn.with_logical_partitioning(init, axes), shape, param_dtype)


def _dropout(
    x: Array, rate: float, deterministic: bool, broadcast_dims: tuple[int, ...] = ()
) -> Array:
    # Built inline (not in setup) so a zero rate costs nothing and needs no rng.
    if rate == 0.0 or deterministic:
        return x
    return nn.Dropout(rate=rate, broadcast_dims=broadcast_dims)(x, deterministic=False)


class RMSNorm(nn.Module):
    """T5 layer norm: x / rms(x) * scale, computed in fp32, no bias, no mean subtraction."""

    epsilon: float
    dtype: jnp.dtype
    param_dtype: jnp.dtype

    @nn.compact
    def __call__(self, x: Array) -> Array:
        scale = _param(
            self, "scale", nn.initializers.ones, ("embed",), (x.shape[-1],), self.param_dtype
        )
        x32 = x.astype(jnp.float32)
        x32 = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + self.epsilon)
        return (x32 * scale.astype(jnp.float32)).astype(self.dtype)


class Embed(nn.Module):
    """Token embedding table ("vocab", "embed"), T5X init N(0, 1)."""

    num_embeddings: int
    features: int
    dtype: jnp.dtype
    param_dtype: jnp.dtype

    @nn.compact
    def __call__(self, ids: Array) -> Array:
        table = _param(
            self,
            "embedding",
            nn.initializers.normal(stddev=1.0),
            ("vocab", "embed"),
            (self.num_embeddings, self.features),
            self.param_dtype,
        )
        x = jnp.take(table.astype(self.dtype), ids, axis=0)
        return nn.with_logical_constraint(x, ("batch", "length", "embed"))


def tokens_as_rows(x: Array) -> Array:
    """[..., d] -> [tokens, d]: one row per token for a projection.

    A free reshape (bitcast). Written with [batch, length] as two free axes, a projection's
    weight gradient contracts over both, and XLA's CPU backend computes it through a transposed
    copy of the activation gradient: a SwiGLU MLP's forward and backward took 55 ms on
    [8, 256, 256] against 27 ms for the same products on [2048, 256] rows.
    """
    return x.reshape(-1, x.shape[-1])


def dense(x: Array, kernel: Array, contract: int = 1) -> Array:
    """x [..., *in] times kernel [*in, *out] -> [..., *out] over the last `contract` axes of x,
    as one [tokens, prod(in)] x [prod(in), prod(out)] product (see `tokens_as_rows`)."""
    lead, inner = x.shape[: x.ndim - contract], x.shape[x.ndim - contract :]
    size = int(np.prod(inner))
    y = x.reshape(-1, size) @ kernel.reshape(size, -1)
    return y.reshape(*lead, *kernel.shape[contract:])


def output_logits(x: Array, table: Array, dtype: jnp.dtype, tied: bool = False) -> Array:
    """fp32 logits [b, t, vocab] of final hidden states [b, t, d]: against an untied kernel
    [d, vocab], or the token table [vocab, d] when `tied`; activation-dtype operands with fp32
    accumulation, for the loss. Every family's output layer and its `head_logits` use it, so
    the logits at selected positions are those of the full output layer."""
    spec = "td,vd->tv" if tied else "td,dv->tv"
    logits = jnp.einsum(
        spec, tokens_as_rows(x), table.astype(dtype), preferred_element_type=jnp.float32
    ).reshape(*x.shape[:-1], table.shape[0] if tied else table.shape[1])
    return nn.with_logical_constraint(logits, ("batch", "length", "vocab"))


class GatedGeluMlp(nn.Module):
    """T5 1.1 MLP: wo(gelu(wi_0 x) * wi_1 x), dropout on the hidden activations as in T5X."""

    d_ff: int
    dropout_rate: float
    dtype: jnp.dtype
    param_dtype: jnp.dtype

    @nn.compact
    def __call__(self, x: Array, deterministic: bool) -> Array:
        d = x.shape[-1]
        fan_in = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
        wi_0 = _param(self, "wi_0", fan_in, ("embed", "mlp"), (d, self.d_ff), self.param_dtype)
        wi_1 = _param(self, "wi_1", fan_in, ("embed", "mlp"), (d, self.d_ff), self.param_dtype)
        wo = _param(self, "wo", fan_in, ("mlp", "embed"), (self.d_ff, d), self.param_dtype)
        gate = nn.gelu(dense(x, wi_0.astype(self.dtype)), approximate=True)
        h = gate * dense(x, wi_1.astype(self.dtype))
        h = nn.with_logical_constraint(h, ("batch", "length", "mlp"))
        # T5X broadcasts hidden-activation dropout over the length axis.
        h = _dropout(h, self.dropout_rate, deterministic, broadcast_dims=(-2,))
        return dense(h, wo.astype(self.dtype))


@jax.custom_jvp
def softmax(x: Array) -> Array:
    """Softmax over the last axis; the forward pass is exactly `jax.nn.softmax`'s.

    Its derivative is the closed form `y * (dx - sum(y * dx))` in terms of the output, as with
    JAX's `jax_softmax_custom_jvp` flag (off by default): differentiating through max, exp, sum
    and divide instead keeps more [b, h, q, k] tensors alive and costs more passes over them.
    """
    unnormalized = jnp.exp(x - jax.lax.stop_gradient(jnp.max(x, axis=-1, keepdims=True)))
    return unnormalized / jnp.sum(unnormalized, axis=-1, keepdims=True)


@softmax.defjvp
def _softmax_jvp(primals: tuple[Array], tangents: tuple[Array]) -> tuple[Array, Array]:
    (x,), (dx,) = primals, tangents
    y = softmax(x)
    return y, y * (dx - jnp.sum(y * dx, axis=-1, keepdims=True))


@jax.custom_vjp
def add_position_bias(logits: Array, bias: Array) -> Array:
    """`logits + bias` for logits [b, h, q, k] and a bias [b or 1, h, q, k].

    A batch-1 bias is shared by every row, so its gradient sums the logits' gradient over the
    batch. XLA's CPU backend emits that reduction over a short leading axis very slowly (hundreds
    of ms for a [8, 4, 512, 512] gradient, against ~1 ms for the same sum as a dot); the backward
    pass below therefore contracts with a vector of ones, which every backend handles well and
    which partitions like a sum when the batch is sharded.
    """
    return logits + bias


def _add_position_bias_fwd(logits: Array, bias: Array) -> tuple[Array, Array]:
    return logits + bias, bias  # the bias is kept for its shape and dtype (alive anyway)


def _add_position_bias_bwd(bias: Array, g: Array) -> tuple[Array, Array]:
    if bias.shape[0] == g.shape[0]:
        return g, g.astype(bias.dtype)
    ones = jnp.ones((g.shape[0],), g.dtype)
    # HIGHEST: a full-precision f32 contraction on TPU too (its default would round to bf16).
    summed = jnp.einsum("b,bhqk->hqk", ones, g, precision=jax.lax.Precision.HIGHEST)
    return g, summed[None].astype(bias.dtype)


add_position_bias.defvjp(_add_position_bias_fwd, _add_position_bias_bwd)


def _attention_weights(q: Array, k: Array, bias: Array | None, mask: Array) -> Array:
    """fp32 softmax weights [b, h, q, k] of heads-major q [b, h, q, d] and k [b, h, k, d]."""
    logits = jnp.einsum("bhqd,bhkd->bhqk", q, k, preferred_element_type=jnp.float32)
    if bias is not None:
        logits = add_position_bias(logits, bias)
    return softmax(jnp.where(mask, logits, _MASKED))


@jax.custom_vjp
def dot_product_attention(q: Array, k: Array, v: Array, bias: Array | None, mask: Array) -> Array:
    """softmax(where(mask, q k^T + bias)) v for heads-major [b, h, len, d] q/k/v (no scaling).

    Scores, bias and softmax are fp32 whatever the activation dtype; the weights meet `v` in its
    dtype. The forward pass is the plain composition. The backward pass is written out so every
    matmul over the [b, h, q, k] weights contracts their last axis or produces a transposed
    result: autodiff's dK = dS^T q and dV = W^T dO contract the query axis of a [q, k] matrix
    ("transposed-A"), which XLA's CPU backend runs ~3-4x slower than the same product written
    as (q^T dS)^T. The softmax backward's row sums `sum_k W dW` are taken as `sum_d dO * O`
    (the same number: dW = dO V^T and O = W V), a pass over [b, h, q, d] instead of
    [b, h, q, k]. The mask needs no [b, h, q, k] pass either: a masked key's weight is exactly
    0 (exp underflows), so its logit gradient `W * (...)` is 0 already; only a row with no
    visible key at all (a padding query: uniform weights over masked logits) needs zeroing,
    done on its [b, h, q, d] output gradient before it meets V. Kept for the backward pass: the
    fp32 weights (as autodiff keeps them), the output and a [b, 1, q, 1] "sees a key" flag.
    """
    weights = _attention_weights(q, k, bias, mask)
    return jnp.einsum("bhqk,bhkd->bhqd", weights.astype(v.dtype), v)


def _dot_product_attention_fwd(
    q: Array, k: Array, v: Array, bias: Array | None, mask: Array
) -> tuple[Array, tuple]:
    weights = _attention_weights(q, k, bias, mask)
    out = jnp.einsum("bhqk,bhkd->bhqd", weights.astype(v.dtype), v)
    any_visible = jnp.any(mask, axis=-1, keepdims=True)  # [b, 1, q, 1]
    return out, (q, k, v, weights, bias, out, any_visible)


def _transposed_result(x: Array) -> Array:
    """A [b, h, d, k] product kept as computed: without the barrier, XLA's algebraic simplifier
    folds the swap that follows back into the dot, which turns it into the transposed-A form
    again (measured on CPU: 6.8 ms against 1.6 ms for [8, 4, 512, 512] x [8, 4, 512, 16])."""
    return jax.lax.optimization_barrier(x)


def _dot_product_attention_bwd(res: tuple, d_out: Array) -> tuple:
    q, k, v, weights, bias, out, any_visible = res
    # dV = W^T dO, computed transposed: [b, h, d, k].
    d_v = _transposed_result(jnp.einsum("bhqd,bhqk->bhdk", d_out, weights.astype(v.dtype)))
    # Rows with no visible key: their logits get no gradient (masked), only V does (above).
    d_out_logits = jnp.where(any_visible, d_out, 0).astype(d_out.dtype)
    d_w = jnp.einsum("bhqd,bhkd->bhqk", d_out_logits, v, preferred_element_type=jnp.float32)
    # Softmax backward (as `softmax`'s jvp); masked logits get 0 through their 0 weights.
    row_sums = jnp.sum(
        d_out_logits.astype(jnp.float32) * out.astype(jnp.float32), axis=-1, keepdims=True
    )
    d_logits = weights * (d_w - row_sums)
    d_s = d_logits.astype(q.dtype)
    d_q = jnp.einsum("bhqk,bhkd->bhqd", d_s, k, preferred_element_type=jnp.float32)
    d_k = _transposed_result(
        jnp.einsum("bhqd,bhqk->bhdk", q, d_s, preferred_element_type=jnp.float32)
    )
    d_bias = None
    if bias is not None:
        d_bias = _add_position_bias_bwd(bias, d_logits)[1]
    return (
        d_q.astype(q.dtype),
        jnp.swapaxes(d_k, -1, -2).astype(k.dtype),
        jnp.swapaxes(d_v, -1, -2).astype(v.dtype),
        d_bias,
        None,
    )


dot_product_attention.defvjp(_dot_product_attention_fwd, _dot_product_attention_bwd)


class MultiHeadAttention(nn.Module):
    """T5 attention (no 1/sqrt(d) scaling at runtime) with an optional autoregressive KV cache.

    Cache protocol (`decode=True`), as in the Flax WMT example and T5X:
      * the first call, normally through `Module.init` on a full-length dummy batch, creates
        zero `cached_key`/`cached_value` of shape [batch, max_length, heads, head_dim] in the
        "cache" collection and otherwise runs like the full forward pass;
      * later calls pass `decode_index` (the write offset, owned by the enclosing stack): the new
        keys/values are written at [decode_index, decode_index + q_len) and the queries attend over
        the whole cache; the stack's mask hides slots that are not written yet.
    """

    num_heads: int
    head_dim: int
    dropout_rate: float
    dtype: jnp.dtype
    param_dtype: jnp.dtype

    @nn.compact
    def __call__(
        self,
        inputs_q: Array,
        inputs_kv: Array,
        mask: Array,
        bias: Array | None,
        deterministic: bool,
        decode: bool = False,
        decode_index: Array | None = None,
    ) -> Array:
        d = inputs_q.shape[-1]
        h, k = self.num_heads, self.head_dim
        # Fold the 1/sqrt(head_dim) attention scale into the query init (T5 / T5X convention).
        fan_in_normal = nn.initializers.variance_scaling(
            1.0, "fan_in", "normal", in_axis=0, out_axis=(1, 2)
        )

        def query_init(key: Array, shape: tuple[int, ...], dtype: jnp.dtype) -> Array:
            return fan_in_normal(key, shape, dtype) / np.sqrt(k).astype(dtype)

        qkv_axes = ("embed", "heads", "kv")
        wq = _param(self, "query", query_init, qkv_axes, (d, h, k), self.param_dtype)
        wk = _param(self, "key", fan_in_normal, qkv_axes, (d, h, k), self.param_dtype)
        wv = _param(self, "value", fan_in_normal, qkv_axes, (d, h, k), self.param_dtype)
        wo = _param(
            self,
            "out",
            nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=(0, 1), out_axis=2),
            ("heads", "kv", "embed"),
            (h, k, d),
            self.param_dtype,
        )
        if not decode:
            # The full (uncached) pass runs heads-major: [b, h, len, head_dim] activations keep
            # the score matmuls free of layout transposes.
            act = ("batch", "heads", "length", "kv")

            def project(x: Array, w: Array) -> Array:
                y = jnp.einsum("bsd,dhk->bhsk", x, w.astype(self.dtype))
                return nn.with_logical_constraint(y, act)

            q, key, value = project(inputs_q, wq), project(inputs_kv, wk), project(inputs_kv, wv)
            if self.dropout_rate == 0.0 or deterministic:
                out = dot_product_attention(q, key, value, bias, mask)
            else:
                weights = _attention_weights(q, key, bias, mask).astype(self.dtype)
                weights = _dropout(weights, self.dropout_rate, deterministic)
                out = jnp.einsum("bhqk,bhkd->bhqd", weights, value)
            out = nn.with_logical_constraint(out, act)
            return jnp.einsum("bhqk,hkd->bqd", out, wo.astype(self.dtype))

        # Cached decoding: [b, len, h, head_dim] activations, the cache's layout.
        act = ("batch", "length", "heads", "kv")
        q = nn.with_logical_constraint(
            jnp.einsum("bsd,dhk->bshk", inputs_q, wq.astype(self.dtype)), act
        )
        key = nn.with_logical_constraint(
            jnp.einsum("bsd,dhk->bshk", inputs_kv, wk.astype(self.dtype)), act
        )
        value = nn.with_logical_constraint(
            jnp.einsum("bsd,dhk->bshk", inputs_kv, wv.astype(self.dtype)), act
        )
        cached_key = self.variable("cache", "cached_key", jnp.zeros, key.shape, key.dtype)
        cached_value = self.variable("cache", "cached_value", jnp.zeros, value.shape, value.dtype)
        if decode_index is not None:
            start = (0, decode_index, 0, 0)
            key = jax.lax.dynamic_update_slice(cached_key.value, key, start)
            value = jax.lax.dynamic_update_slice(cached_value.value, value, start)
            cached_key.value, cached_value.value = key, value

        # Scores, bias and softmax in fp32 whatever the activation dtype.
        logits = jnp.einsum("bqhk,bshk->bhqs", q, key, preferred_element_type=jnp.float32)
        if bias is not None:
            logits = add_position_bias(logits, bias)
        logits = jnp.where(mask, logits, _MASKED)
        weights = softmax(logits).astype(self.dtype)
        weights = _dropout(weights, self.dropout_rate, deterministic)
        out = jnp.einsum("bhqs,bshk->bqhk", weights, value)
        out = nn.with_logical_constraint(out, act)
        return jnp.einsum("bqhk,hkd->bqd", out, wo.astype(self.dtype))


def relative_position_bucket(
    relative_position: Array | np.ndarray,
    bidirectional: bool,
    num_buckets: int,
    max_distance: int,
    xp: Any = jnp,
) -> Array | np.ndarray:
    """T5's bucketing of `key_pos - query_pos`: exact for small distances, log-spaced up to
    `max_distance`, saturating beyond. Causal (unidirectional) bucketing maps every future key to
    bucket 0, which the mask hides anyway (or, for prefix-LM, treats like distance 0 as T5X does).
    `xp=np` computes it on the host for static positions, in the same float32 arithmetic.
    """
    n = -relative_position
    bucket = xp.zeros_like(n)
    if bidirectional:
        num_buckets //= 2
        bucket = bucket + (n < 0).astype(n.dtype) * num_buckets
        n = xp.abs(n)
    else:
        n = xp.maximum(n, 0)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    # The log is taken on a clipped value so the small branch never sees log(0) (it is unused
    # there, but NaNs in an unselected branch still poison gradients).
    n_large = xp.maximum(n, max_exact).astype(np.float32)
    scale = np.float32(np.log(max_distance / max_exact))
    val_if_large = max_exact + (
        xp.log(n_large / np.float32(max_exact)) / scale * np.float32(num_buckets - max_exact)
    ).astype(n.dtype)
    val_if_large = xp.minimum(val_if_large, num_buckets - 1)
    return bucket + xp.where(is_small, n, val_if_large)


class RelativePositionBias(nn.Module):
    """One bias table per stack ("heads", "relpos_buckets"), shared across its layers (T5)."""

    num_heads: int
    num_buckets: int
    max_distance: int
    bidirectional: bool
    param_dtype: jnp.dtype

    @nn.compact
    def __call__(self, query_positions: Array, key_positions: Array) -> Array:
        """Positions [b, q] and [b, k] (b may be 1) -> fp32 bias [b, heads, q, k]."""
        table = _param(
            self,
            "rel_embedding",
            nn.initializers.variance_scaling(1.0, "fan_avg", "uniform"),
            ("heads", "relpos_buckets"),
            (self.num_heads, self.num_buckets),
            self.param_dtype,
        )
        relative = key_positions[:, None, :] - query_positions[:, :, None]
        # Static (numpy) positions, e.g. `default_positions`: the buckets are a constant of the
        # compiled step instead of a log over [q, k] on every step.
        static = isinstance(relative, np.ndarray)
        buckets = relative_position_bucket(
            relative.astype(np.int32),
            self.bidirectional,
            self.num_buckets,
            self.max_distance,
            xp=np if static else jnp,
        )
        bias = jnp.take(table.astype(jnp.float32), buckets, axis=1)  # [h, b, q, k]
        return jnp.transpose(bias, (1, 0, 2, 3))


def attention_mask(
    query_valid: Array,
    key_valid: Array,
    query_segment_ids: Array | None = None,
    key_segment_ids: Array | None = None,
) -> Array:
    """Boolean [b, 1, q, k]: both positions valid and (when packed) in the same segment."""
    mask = query_valid[:, :, None] & key_valid[:, None, :]
    if query_segment_ids is not None and key_segment_ids is not None:
        mask = mask & (query_segment_ids[:, :, None] == key_segment_ids[:, None, :])
    return mask[:, None, :, :]


def default_positions(tokens: Array) -> np.ndarray:
    """[1, length] positions 0..length-1; batch 1 so the position bias broadcasts over rows.
    A numpy array: the relative-position buckets of static positions are then computed once,
    at trace time."""
    return np.arange(tokens.shape[1], dtype=np.int32)[None, :]
