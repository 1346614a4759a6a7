"""The decoder stack shared by the families (T5's decoder, the decoder-only LM's body) and its
KV cache.

Decoding with a KV cache (`decode=True`), the same protocol for every family built on it:

  1. Create the cache by running `init` once with `decode=True` on a full-length dummy batch
     [batch, max_length] (see `flan_jax.models.init_decode_cache`); this allocates zero K/V
     buffers of that length and a write index.
  2. Call `apply({"params": p, "cache": c}, ..., decode=True, mutable=["cache"])` with the next
     chunk of tokens [batch, n]; it writes the chunk at the index, advances it by n and returns
     the chunk's logits. n = 1 is a plain step; n > 1 is a prefill (e.g. a whole prompt, where the
     prefix-LM marker makes the prompt attend bidirectionally).

Positions in decode mode come from the cache index (rows decode in lockstep; packing and
per-row offsets are not supported while decoding). The cache's "cache_index" and
"key_positions" are shared by all rows; every other leaf has a leading row axis
(`gather_rows`; `lm_decoding.copy_rows` copies a batch-1 cache to k rows).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from flan_jax.models import lm_decoding
from flan_jax.models.family import ModelConfig
from flan_jax.models.layers import (
    Array,
    GatedGeluMlp,
    MultiHeadAttention,
    RelativePositionBias,
    RMSNorm,
    _dropout,
    _param,
    attention_mask,
    default_positions,
    output_logits,
)


class DecoderLayer(nn.Module):
    """Pre-norm self-attention, optional cross-attention, gated-GELU MLP; residual dropout."""

    config: ModelConfig
    cross_attention: bool

    @nn.compact
    def __call__(
        self,
        x: Array,
        self_mask: Array,
        self_bias: Array,
        encoded: Array | None,
        cross_mask: Array | None,
        deterministic: bool,
        decode: bool,
        decode_index: Array | None,
    ) -> Array:
        cfg = self.config
        dtype, param_dtype = jnp.dtype(cfg.dtype), jnp.dtype(cfg.param_dtype)

        def norm(name: str) -> RMSNorm:
            return RMSNorm(cfg.layer_norm_epsilon, dtype, param_dtype, name=name)

        def attention(name: str) -> MultiHeadAttention:
            return MultiHeadAttention(
                cfg.num_heads, cfg.head_dim, cfg.dropout_rate, dtype, param_dtype, name=name
            )

        def residual_dropout(y: Array) -> Array:
            return _dropout(y, cfg.dropout_rate, deterministic, broadcast_dims=(-2,))

        y = norm("pre_self_attention_layer_norm")(x)
        y = attention("self_attention")(
            y, y, self_mask, self_bias, deterministic, decode=decode, decode_index=decode_index
        )
        x = x + residual_dropout(y)
        if self.cross_attention:
            y = norm("pre_cross_attention_layer_norm")(x)
            # Cross-attention K/V are recomputed from `encoded` at every decode step (no cache).
            y = attention("encoder_decoder_attention")(y, encoded, cross_mask, None, deterministic)
            x = x + residual_dropout(y)
        y = norm("pre_mlp_layer_norm")(x)
        y = GatedGeluMlp(cfg.d_ff, cfg.dropout_rate, dtype, param_dtype, name="mlp")(
            y, deterministic
        )
        x = x + residual_dropout(y)
        return nn.with_logical_constraint(x, ("batch", "length", "embed"))


class DecoderStack(nn.Module):
    """Embedded tokens -> layers -> final norm -> untied logits [b, t, vocab] (fp32).

    Used as an encoder-decoder's decoder (`cross_attention=True`, embedding shared with the
    encoder) and as the body of a decoder-only LM. Self-attention is causal;
    `decoder_causal_attention` (seqio's prefix-LM marker, 1 on the prefix) additionally lets
    prefix positions see each other.
    """

    config: ModelConfig
    num_layers: int
    cross_attention: bool
    embedder: nn.Module

    @nn.compact
    def __call__(
        self,
        decoder_input_tokens: Array,
        encoded: Array | None = None,
        encoder_input_tokens: Array | None = None,
        decoder_target_tokens: Array | None = None,
        decoder_segment_ids: Array | None = None,
        decoder_positions: Array | None = None,
        encoder_segment_ids: Array | None = None,
        decoder_causal_attention: Array | None = None,
        deterministic: bool = True,
        decode: bool = False,
        max_decode_length: int | None = None,
        return_hidden: bool = False,
    ) -> Array:
        """fp32 logits [b, t, vocab]; with `return_hidden`, the final hidden states [b, t, d]
        that `layers.output_logits` turns into the same logits."""
        cfg = self.config
        dtype, param_dtype = jnp.dtype(cfg.dtype), jnp.dtype(cfg.param_dtype)
        batch, length = decoder_input_tokens.shape
        relpos = RelativePositionBias(
            cfg.num_heads,
            cfg.relative_attention_num_buckets,
            cfg.relative_attention_max_distance,
            bidirectional=False,
            param_dtype=param_dtype,
            name="relpos_bias",
        )
        prefix = None if decoder_causal_attention is None else decoder_causal_attention > 0

        decode_index = None
        if decode:
            # The stack owns the write index; `key_positions` records the cache length (its shape)
            # and the key positions (its value) so steps need no max-length argument.
            initialized = self.has_variable("cache", "cache_index")
            cache_index = self.variable("cache", "cache_index", jnp.zeros, (), jnp.int32)
            key_positions = self.variable(
                "cache", "key_positions", lambda: jnp.arange(length, dtype=jnp.int32)
            )
            cache_length = key_positions.value.shape[0]
            if max_decode_length is not None and max_decode_length != cache_length:
                raise ValueError(
                    f"max_decode_length={max_decode_length} differs from the cache length "
                    f"{cache_length}: initialize the cache with that length."
                )
            if initialized:
                decode_index = cache_index.value
                cache_index.value = decode_index + length
        if decode_index is not None:
            q_pos = (decode_index + jnp.arange(length, dtype=jnp.int32))[None, :]
            k_pos = key_positions.value[None, :]
            visible = k_pos[:, None, :] <= q_pos[:, :, None]  # written slots up to the query
            if prefix is not None:
                # Prefix tokens of this chunk see each other (earlier cache slots are already
                # visible; later ones are not written yet).
                key_prefix = jax.lax.dynamic_update_slice(
                    jnp.zeros((batch, k_pos.shape[1]), bool), prefix, (0, decode_index)
                )
                visible = visible | (prefix[:, :, None] & key_prefix[:, None, :])
            self_mask = visible[:, None, :, :]
            self_bias = relpos(q_pos, k_pos)
            query_valid = jnp.ones((batch, length), bool)
            decoder_segment_ids = encoder_segment_ids = None  # no packing while decoding
        else:
            idx = jnp.arange(length, dtype=jnp.int32)
            # Causality follows the row index (positions restart per packed segment; the segment
            # mask below keeps segments apart).
            visible = jnp.broadcast_to(idx[None, :] <= idx[:, None], (batch, length, length))
            if prefix is not None:
                visible = visible | (prefix[:, :, None] & prefix[:, None, :])
            # Decoder inputs start with token 0 (BOS = pad), so validity comes from the targets.
            query_valid = (
                decoder_target_tokens > 0
                if decoder_target_tokens is not None
                else jnp.ones((batch, length), bool)
            )
            self_mask = visible[:, None] & attention_mask(
                query_valid, query_valid, decoder_segment_ids, decoder_segment_ids
            )
            pos = (
                decoder_positions
                if decoder_positions is not None
                else default_positions(decoder_input_tokens)
            )
            self_bias = relpos(pos, pos)

        cross_mask = None
        if self.cross_attention:
            cross_mask = attention_mask(
                query_valid, encoder_input_tokens > 0, decoder_segment_ids, encoder_segment_ids
            )

        x = self.embedder(decoder_input_tokens)
        x = _dropout(x, cfg.dropout_rate, deterministic, broadcast_dims=(-2,))
        # Arguments 6 and 7 (`deterministic`, `decode`; `self` counts as 0) are Python bools.
        layer_cls = nn.remat(DecoderLayer, static_argnums=(6, 7)) if cfg.remat else DecoderLayer
        for i in range(self.num_layers):
            x = layer_cls(cfg, self.cross_attention, name=f"layers_{i}")(
                x, self_mask, self_bias, encoded, cross_mask, deterministic, decode, decode_index
            )
        x = RMSNorm(cfg.layer_norm_epsilon, dtype, param_dtype, name="decoder_norm")(x)
        x = _dropout(x, cfg.dropout_rate, deterministic, broadcast_dims=(-2,))
        kernel = _param(
            self,
            "logits_dense",
            nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal"),
            ("embed", "vocab"),
            (cfg.d_model, cfg.vocab_size),
            param_dtype,
        )
        if return_hidden:
            return x
        return output_logits(x, kernel, dtype)


# ---------------------------------------------------------------------------------------------
# Cache rows: the shared index / key positions stay, every other leaf follows its rows.


# The cache leaves every row shares (the write index, the key positions).
SHARED_CACHE_LEAVES = ("cache_index", "key_positions")


def gather_rows(cache: Any, rows: Array) -> Any:
    """The cache with row j taken from row `rows[j]` (beam search reorders its beams)."""
    return lm_decoding.take_rows(cache, rows, SHARED_CACHE_LEAVES)
