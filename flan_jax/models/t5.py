"""T5 1.1 encoder-decoder (Flax Linen), parameter names and logical axes as in T5X.

Inputs are seqio EncDecFeatureConverter batches: token ids with 0 as padding, and for packed
batches `*_segment_ids` (attention never crosses segments) and `*_positions` (relative positions
restart per segment). See `decoder.py` for the KV-cache decoding protocol.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from flan_jax.models.config import T5Config
from flan_jax.models.decoder import DecoderStack
from flan_jax.models.layers import (
    Array,
    Embed,
    GatedGeluMlp,
    MultiHeadAttention,
    RelativePositionBias,
    RMSNorm,
    _dropout,
    attention_mask,
    default_positions,
)


class EncoderLayer(nn.Module):
    """Pre-norm bidirectional self-attention and gated-GELU MLP, residual dropout."""

    config: T5Config

    @nn.compact
    def __call__(self, x: Array, mask: Array, bias: Array, deterministic: bool) -> Array:
        cfg = self.config
        dtype, param_dtype = jnp.dtype(cfg.dtype), jnp.dtype(cfg.param_dtype)
        y = RMSNorm(cfg.layer_norm_epsilon, dtype, param_dtype, name="pre_attention_layer_norm")(x)
        y = MultiHeadAttention(
            cfg.num_heads, cfg.head_dim, cfg.dropout_rate, dtype, param_dtype, name="attention"
        )(y, y, mask, bias, deterministic)
        x = x + _dropout(y, cfg.dropout_rate, deterministic, broadcast_dims=(-2,))
        y = RMSNorm(cfg.layer_norm_epsilon, dtype, param_dtype, name="pre_mlp_layer_norm")(x)
        y = GatedGeluMlp(cfg.d_ff, cfg.dropout_rate, dtype, param_dtype, name="mlp")(
            y, deterministic
        )
        x = x + _dropout(y, cfg.dropout_rate, deterministic, broadcast_dims=(-2,))
        return nn.with_logical_constraint(x, ("batch", "length", "embed"))


class Encoder(nn.Module):
    """Embedded tokens -> layers -> final norm: [b, s] ids -> [b, s, d_model]."""

    config: T5Config
    embedder: nn.Module

    @nn.compact
    def __call__(
        self,
        tokens: Array,
        segment_ids: Array | None,
        positions: Array | None,
        deterministic: bool,
    ) -> Array:
        cfg = self.config
        dtype, param_dtype = jnp.dtype(cfg.dtype), jnp.dtype(cfg.param_dtype)
        valid = tokens > 0
        mask = attention_mask(valid, valid, segment_ids, segment_ids)
        pos = positions if positions is not None else default_positions(tokens)
        bias = RelativePositionBias(
            cfg.num_heads,
            cfg.relative_attention_num_buckets,
            cfg.relative_attention_max_distance,
            bidirectional=True,
            param_dtype=param_dtype,
            name="relpos_bias",
        )(pos, pos)
        x = self.embedder(tokens)
        x = _dropout(x, cfg.dropout_rate, deterministic, broadcast_dims=(-2,))
        # Argument 4 (`deterministic`; `self` counts as 0) is a Python bool.
        layer_cls = nn.remat(EncoderLayer, static_argnums=(4,)) if cfg.remat else EncoderLayer
        for i in range(cfg.num_encoder_layers):
            x = layer_cls(cfg, name=f"layers_{i}")(x, mask, bias, deterministic)
        x = RMSNorm(cfg.layer_norm_epsilon, dtype, param_dtype, name="encoder_norm")(x)
        return _dropout(x, cfg.dropout_rate, deterministic, broadcast_dims=(-2,))


class T5(nn.Module):
    """T5 1.1: `__call__` (teacher-forced logits), `encode`, `decode` (optionally cached)."""

    config: T5Config

    def setup(self) -> None:
        cfg = self.config
        # One input embedding shared by encoder and decoder; output logits are untied.
        self.token_embedder = Embed(
            cfg.vocab_size, cfg.d_model, jnp.dtype(cfg.dtype), jnp.dtype(cfg.param_dtype)
        )
        self.encoder = Encoder(cfg, embedder=self.token_embedder)
        self.decoder = DecoderStack(
            cfg, cfg.num_decoder_layers, cross_attention=True, embedder=self.token_embedder
        )

    def encode(
        self,
        encoder_input_tokens: Array,
        encoder_segment_ids: Array | None = None,
        encoder_positions: Array | None = None,
        enable_dropout: bool = False,
    ) -> Array:
        """[b, s] token ids -> encoded [b, s, d_model] (activation dtype)."""
        return self.encoder(
            encoder_input_tokens, encoder_segment_ids, encoder_positions, not enable_dropout
        )

    def decode(
        self,
        encoded: Array,
        encoder_input_tokens: Array,
        decoder_input_tokens: Array,
        decoder_segment_ids: Array | None = None,
        decoder_positions: Array | None = None,
        encoder_segment_ids: Array | None = None,
        enable_dropout: bool = False,
        decode: bool = False,
        max_decode_length: int | None = None,
        decoder_target_tokens: Array | None = None,
    ) -> Array:
        """Decoder logits [b, t, vocab] (fp32) given the encoder output.

        `decoder_target_tokens`, when given, masks padded target positions (decoder inputs start
        with 0, so padding cannot be read from them); without it the decoder is causal only,
        which changes nothing at real positions.

        With `decode=True` the call is one cached step (or chunk) of autoregressive decoding; see
        `decoder.py`. `max_decode_length`, if given, must equal the cache length (a check only:
        the length is taken from the cache itself).
        """
        return self.decoder(
            decoder_input_tokens,
            encoded=encoded,
            encoder_input_tokens=encoder_input_tokens,
            decoder_target_tokens=decoder_target_tokens,
            decoder_segment_ids=decoder_segment_ids,
            decoder_positions=decoder_positions,
            encoder_segment_ids=encoder_segment_ids,
            deterministic=not enable_dropout,
            decode=decode,
            max_decode_length=max_decode_length,
        )

    def __call__(
        self,
        encoder_input_tokens: Array,
        decoder_input_tokens: Array,
        decoder_target_tokens: Array | None = None,
        encoder_segment_ids: Array | None = None,
        decoder_segment_ids: Array | None = None,
        encoder_positions: Array | None = None,
        decoder_positions: Array | None = None,
        enable_dropout: bool = False,
    ) -> Array:
        """Teacher-forced logits [b, t, vocab] (fp32) for a seqio EncDecFeatureConverter batch."""
        encoded = self.encode(
            encoder_input_tokens, encoder_segment_ids, encoder_positions, enable_dropout
        )
        return self.decode(
            encoded,
            encoder_input_tokens,
            decoder_input_tokens,
            decoder_target_tokens=decoder_target_tokens,
            decoder_segment_ids=decoder_segment_ids,
            decoder_positions=decoder_positions,
            encoder_segment_ids=encoder_segment_ids,
            enable_dropout=enable_dropout,
        )
