"""The T5 1.1 family: `T5Config`, its preset sizes, the `T5` encoder-decoder (Flax Linen; parameter
names and logical axes as in T5X) and the family hooks (`T5Family`).

Inputs are seqio EncDecFeatureConverter batches: token ids with 0 as padding, and for packed
batches `*_segment_ids` (attention never crosses segments) and `*_positions` (relative positions
restart per segment). See `stack.py` for the KV-cache decoding protocol.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from flan_jax.models import family
from flan_jax.models.family import ModelConfig, ModelFn, Stepper
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
from flan_jax.models.losses import shift_right, target_scores
from flan_jax.models.stack import DecoderStack, gather_rows


@dataclasses.dataclass(frozen=True)
class T5Config(ModelConfig):
    """T5 1.1 encoder-decoder (gated-GELU MLP, RMSNorm, relative position buckets, untied output
    logits). Defaults are T5 1.1 small; `dtype` is the activation dtype."""

    vocab_size: int = 32128
    d_model: int = 512
    num_heads: int = 6
    head_dim: int = 64
    d_ff: int = 1024
    num_encoder_layers: int = 8
    num_decoder_layers: int = 8
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout_rate: float = 0.0
    layer_norm_epsilon: float = 1e-6
    dtype: str = "float32"
    param_dtype: str = "float32"
    remat: bool = False

    def __post_init__(self) -> None:
        family.check_block_fields(self)
        family.check_positive(self, "num_encoder_layers", "num_decoder_layers")


# T5 1.1 sizes (t5.md); `tiny` is for tests and laptops. Vocabulary defaults to 32128 and is
# usually overridden at build time for tiny models: `t5_config("tiny", vocab_size=256)`.
# gin/models/t5_1_1_<size>.gin bind the same values (tests/test_model_presets.py checks it).
T5_SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(
        d_model=64, num_heads=4, head_dim=16, d_ff=128, num_encoder_layers=2, num_decoder_layers=2
    ),
    "small": dict(
        d_model=512, num_heads=6, head_dim=64, d_ff=1024, num_encoder_layers=8, num_decoder_layers=8
    ),
    "base": dict(
        d_model=768,
        num_heads=12,
        head_dim=64,
        d_ff=2048,
        num_encoder_layers=12,
        num_decoder_layers=12,
    ),
    "large": dict(
        d_model=1024,
        num_heads=16,
        head_dim=64,
        d_ff=2816,
        num_encoder_layers=24,
        num_decoder_layers=24,
    ),
    "xl": dict(
        d_model=2048,
        num_heads=32,
        head_dim=64,
        d_ff=5120,
        num_encoder_layers=24,
        num_decoder_layers=24,
    ),
    "xxl": dict(
        d_model=4096,
        num_heads=64,
        head_dim=64,
        d_ff=10240,
        num_encoder_layers=24,
        num_decoder_layers=24,
    ),
}


# ---------------------------------------------------------------------------------------------
# The module.


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


# ---------------------------------------------------------------------------------------------
# The family hooks.


class T5Family(family.Family):
    """T5 1.1: encoder-decoder batches, encode-once scoring and decoding."""

    name = "t5"
    display_name = "T5"
    config_class = T5Config
    batch_layout = "encoder_decoder"
    sizes = T5_SIZES

    def build(self, config: T5Config) -> T5:
        return T5(config)

    def model_feature_lengths(
        self, config: T5Config, task_feature_lengths: Mapping[str, int]
    ) -> dict[str, int]:
        return {
            "encoder_input_tokens": task_feature_lengths["inputs"],
            "decoder_target_tokens": task_feature_lengths["targets"],
        }

    def param_count(self, config: T5Config) -> int:
        d, a, f = config.d_model, config.num_heads * config.head_dim, config.d_ff
        attn = 4 * d * a  # q, k, v, o
        mlp = 3 * d * f  # wi_0, wi_1, wo
        relpos = config.relative_attention_num_buckets * config.num_heads
        embeddings = 2 * config.vocab_size * d  # input embedding + untied logits kernel
        encoder = config.num_encoder_layers * (attn + mlp + 2 * d) + d + relpos
        decoder = config.num_decoder_layers * (2 * attn + mlp + 3 * d) + d + relpos
        return embeddings + encoder + decoder

    def train_flops_per_example(
        self, config: T5Config, task_feature_lengths: Mapping[str, int]
    ) -> float:
        """3x forward (matmuls 2mkn; gathers free): the formula of t5.md, with S_e = inputs and
        S_d = targets."""
        d, a, f, v = (
            config.d_model,
            config.num_heads * config.head_dim,
            config.d_ff,
            config.vocab_size,
        )
        se, sd = task_feature_lengths["inputs"], task_feature_lengths["targets"]

        def block(s: int) -> float:  # self-attention (projections + scores/values) and MLP
            return 2 * s * (4 * d * a + 3 * d * f) + 4 * s * s * a

        fwd = config.num_encoder_layers * block(se)
        fwd += config.num_decoder_layers * (
            block(sd) + 2 * sd * (2 * d * a) + 2 * se * (2 * d * a) + 4 * sd * se * a
        )
        fwd += 2 * sd * d * v
        return 3.0 * float(fwd)

    def init_decode_cache(
        self,
        model: T5,
        batch_size: int,
        max_decode_length: int,
        encoder_length: int | None = None,
    ) -> dict:
        """Runs `T5.decode` with `decode=True` on a dummy encoder output of `encoder_length`."""
        if encoder_length is None:
            raise ValueError("init_decode_cache: T5 needs encoder_length (the inputs length).")
        cfg = model.config
        decoder_tokens = jnp.ones((batch_size, max_decode_length), jnp.int32)
        encoded = jnp.zeros((batch_size, encoder_length, cfg.d_model), jnp.dtype(cfg.dtype))
        encoder_tokens = jnp.ones((batch_size, encoder_length), jnp.int32)

        def init(rng: jax.Array) -> dict:
            return model.init(
                rng, encoded, encoder_tokens, decoder_tokens, decode=True, method=T5.decode
            )["cache"]

        # Only the cache is returned, so XLA drops the parameter init and the forward pass.
        return jax.jit(init)(jax.random.key(0))

    def row_scorer(self, model: T5, prefix_lm: bool) -> ModelFn:
        del prefix_lm  # the encoder always sees the whole input

        def score(params, inputs, targets):
            logits = model.apply(
                {"params": params}, inputs, shift_right(targets), decoder_target_tokens=targets
            )
            return target_scores(logits, targets)

        return ModelFn(score)

    def option_scorer(self, model: T5, prefix_lm: bool) -> ModelFn:
        """Encodes each input once and decodes every option against that encoder output."""
        del prefix_lm

        def score(params, inputs, options):
            g, k, t = options.shape
            encoded = model.apply({"params": params}, inputs, method=T5.encode)
            # Option row r reads group r // K: a repeat is that gather, and it keeps every
            # option on the device that holds its group (no cross-device traffic).
            encoded = jnp.repeat(encoded, k, axis=0)
            enc_tokens = jnp.repeat(inputs, k, axis=0)
            targets = options.reshape(g * k, t)
            logits = model.apply(
                {"params": params},
                encoded,
                enc_tokens,
                shift_right(targets),
                decoder_target_tokens=targets,
                method=T5.decode,
            )
            return target_scores(logits, targets).reshape(g, k, 2)

        return ModelFn(score)

    def stepper(
        self, model: T5, copies: int, max_len: int, use_cache: bool, prefix_lm: bool
    ) -> ModelFn:
        """The encoder output is computed once (it does not depend on the step)."""
        del prefix_lm

        def make(params: Any, inputs: Array) -> Stepper:
            return _t5_stepper(model, params, inputs, copies, max_len, use_cache)

        return ModelFn(make)


def _t5_stepper(
    model: T5, params: Any, inputs: Array, copies: int, max_len: int, use_cache: bool
) -> Stepper:
    encoded = model.apply({"params": params}, inputs, method=T5.encode)
    encoded = jnp.repeat(encoded, copies, axis=0)
    enc_tokens = jnp.repeat(inputs, copies, axis=0)
    n = enc_tokens.shape[0]

    if use_cache:

        def step(cache, tokens, i):
            del i  # the cache knows its write index
            logits, mutated = model.apply(
                {"params": params, "cache": cache},
                encoded,
                enc_tokens,
                tokens[:, None],
                method=T5.decode,
                decode=True,
                mutable=["cache"],
            )
            return logits[:, 0], mutated["cache"]

        def start():
            # One slot more than the output: the loop's last step writes a token never read.
            cache = FAMILY.init_decode_cache(
                model, batch_size=n, max_decode_length=max_len + 1, encoder_length=inputs.shape[1]
            )
            return step(cache, jnp.zeros((n,), jnp.int32), 0)

        return Stepper(start, step, gather_rows)

    def full(buffer, i):
        logits = model.apply(
            {"params": params}, encoded, enc_tokens, buffer, method=T5.decode
        )  # causal: the not-yet-written slots to the right change nothing at slot i
        return jax.lax.dynamic_index_in_dim(logits, i, axis=1, keepdims=False)

    def step_nc(buffer, tokens, i):
        buffer = jax.lax.dynamic_update_index_in_dim(buffer, tokens, i + 1, axis=1)
        return full(buffer, i + 1), buffer

    def start_nc():
        buffer = jnp.zeros((n, max_len + 1), jnp.int32)  # slot 0 is BOS (= 0)
        return full(buffer, 0), buffer

    return Stepper(start_nc, step_nc, lambda buf, rows: jnp.take(buf, rows, axis=0))


FAMILY = family.register(T5Family())


def t5_config(size: str, **overrides: Any) -> T5Config:
    """A T5 1.1 preset by name (`T5_SIZES`), with field overrides (vocab_size, dropout_rate...)."""
    return FAMILY.preset(size, **overrides)
