"""What the Hugging Face-style decoder-only families share (`llama.py`, `qwen2.py`, `gemma.py`):
rotary positions (with Llama 3's frequency scaling), grouped-query attention, a gated MLP,
RMSNorm, tied or untied embeddings, and the family hooks (training batches, FLOPs, KV-cache
scoring and decoding).

The families differ only in switches their config class fixes (class attributes, not fields):
q/k/v biases (Qwen2), the MLP activation (SiLU, or Gemma's tanh-approximated GELU), the norm
scale `1 + weight` (Gemma) and embeddings scaled by sqrt(d_model) (Gemma). The numerics follow
`transformers`' LlamaForCausalLM / Qwen2ForCausalLM / GemmaForCausalLM (tested to 1e-4 in f32).

Batches are seqio's prefix-LM ones (inputs then targets in one sequence, the loss on the targets
only), with packing: segment ids keep attention inside each example and positions restart at 0
per example. Attention is always causal: these models were pretrained causal, so the prefix-LM
marker (`decoder_causal_attention`) is accepted and ignored. seqio starts every sequence with
token 0; the model reads the token at position 0 as its BOS token (`bos_token_id`), so the data
needs no model-specific id there and the vocabulary must not add a BOS itself.

KV cache (`decode=True`; create it with `init_decode_cache`): one slot per written token with
keys already rotated. Shared by all rows: the write slot (`cache_index`), the next token's
position (`next_position`) and each slot's position (`key_positions`, 2**30 for unwritten or
hidden slots), so a query sees exactly the written slots at or before its position. Scoring and
decoding prefill each prompt (right-padded) on its own and hide its padding slots, so later
tokens continue at the prompt's real length.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from flan_jax.models import family, lm_decoding
from flan_jax.models.family import ModelConfig, ModelFn, Stepper
from flan_jax.models.layers import _MASKED, Array, dense, output_logits, softmax
from flan_jax.models.losses import target_scores

# Position of unwritten and hidden cache slots: above any query position, so always masked.
_HIDDEN_POSITION = 2**30
_ROPE_SCALINGS = ("none", "llama3")
_SHARED_CACHE = ("cache_index", "next_position", "key_positions")


@dataclasses.dataclass(frozen=True)
class RopeDecoderConfig(ModelConfig):
    """Fields shared by the RoPE decoder families (names follow config.json where they can).

    rope_scaling: "none" or "llama3" (Llama 3.1+: long wavelengths divided by
    `rope_scaling_factor`, a smooth ramp between `rope_low_freq_factor` and
    `rope_high_freq_factor` relative to `rope_original_max_positions`).
    bos_token_id: the token the model reads at position 0 (None: keep seqio's token 0).
    eos_token_id / max_position_embeddings: recorded for export only.
    """

    vocab_size: int = 512
    d_model: int = 64
    num_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = 16
    d_ff: int = 128
    num_layers: int = 2
    rope_theta: float = 10000.0
    rope_scaling: str = "none"
    rope_scaling_factor: float = 1.0
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0
    rope_original_max_positions: int = 8192
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = False
    norm_epsilon: float = 1e-6
    bos_token_id: int | None = None
    eos_token_id: int | tuple[int, ...] | None = None
    dropout_rate: float = 0.0
    dtype: str = "float32"
    param_dtype: str = "float32"
    remat: bool = False

    # Architecture switches: fixed by each family's config class.
    qkv_bias: ClassVar[bool] = False
    activation: ClassVar[str] = "silu"  # "silu" | "gelu_tanh"
    norm_offset: ClassVar[float] = 0.0  # Gemma scales by (1 + weight)
    scale_embeddings: ClassVar[bool] = False  # Gemma multiplies embeddings by sqrt(d_model)

    def __post_init__(self) -> None:
        name = type(self).__name__
        if isinstance(self.eos_token_id, list):  # from JSON: keep the config hashable
            object.__setattr__(self, "eos_token_id", tuple(self.eos_token_id))
        family.check_positive(
            self,
            "vocab_size",
            "d_model",
            "num_heads",
            "num_kv_heads",
            "head_dim",
            "d_ff",
            "num_layers",
            "rope_original_max_positions",
            "max_position_embeddings",
        )
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"{name}.num_kv_heads={self.num_kv_heads}: must divide num_heads="
                f"{self.num_heads} (grouped-query attention)."
            )
        if self.head_dim % 2:
            raise ValueError(f"{name}.head_dim={self.head_dim}: must be even (rotary pairs).")
        if not self.rope_theta > 0:
            raise ValueError(f"{name}.rope_theta={self.rope_theta!r}: must be > 0.")
        if self.rope_scaling not in _ROPE_SCALINGS:
            raise ValueError(
                f"{name}.rope_scaling={self.rope_scaling!r}: must be one of {_ROPE_SCALINGS}."
            )
        if self.rope_scaling == "llama3" and not (
            self.rope_scaling_factor >= 1.0
            and 0 < self.rope_low_freq_factor < self.rope_high_freq_factor
        ):
            raise ValueError(
                f"{name}: llama3 rope scaling needs rope_scaling_factor >= 1 and 0 < "
                f"rope_low_freq_factor < rope_high_freq_factor (got {self.rope_scaling_factor}, "
                f"{self.rope_low_freq_factor}, {self.rope_high_freq_factor})."
            )
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"{name}.dropout_rate={self.dropout_rate!r}: must be in [0, 1).")
        if not self.norm_epsilon > 0.0:
            raise ValueError(f"{name}.norm_epsilon={self.norm_epsilon!r}: must be > 0.")
        for field in ("dtype", "param_dtype"):
            if getattr(self, field) not in family._DTYPES:
                raise ValueError(
                    f"{name}.{field}={getattr(self, field)!r}: must be one of {family._DTYPES}."
                )
        for field in ("remat", "tie_word_embeddings"):
            if not isinstance(getattr(self, field), bool):
                raise ValueError(f"{name}.{field}={getattr(self, field)!r}: must be True or False.")
        bos = self.bos_token_id
        if bos is not None and not (isinstance(bos, int) and 0 <= bos < self.vocab_size):
            raise ValueError(
                f"{name}.bos_token_id={bos!r}: must be None or a token id below vocab_size="
                f"{self.vocab_size}."
            )


# ---------------------------------------------------------------------------------------------
# Rotary positions.


def inverse_frequencies(cfg: RopeDecoderConfig) -> np.ndarray:
    """[head_dim / 2] float32 rotary frequencies (with Llama 3's scaling if configured)."""
    exponents = np.arange(0, cfg.head_dim, 2, dtype=np.float32) / np.float32(cfg.head_dim)
    inv = (1.0 / (np.float32(cfg.rope_theta) ** exponents)).astype(np.float32)
    if cfg.rope_scaling == "llama3":
        factor, old = cfg.rope_scaling_factor, cfg.rope_original_max_positions
        low, high = cfg.rope_low_freq_factor, cfg.rope_high_freq_factor
        wavelength = 2 * math.pi / inv
        scaled = np.where(wavelength > old / low, inv / factor, inv)
        smooth = (old / wavelength - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelength >= old / high) & (wavelength <= old / low)
        inv = np.where(medium, smoothed, scaled).astype(np.float32)
    return inv


def rotary_tables(cfg: RopeDecoderConfig, positions: Array) -> tuple[Array, Array]:
    """cos, sin [b or 1, length, 1, head_dim] (fp32) for integer positions [b or 1, length]."""
    angles = positions.astype(jnp.float32)[..., None] * jnp.asarray(inverse_frequencies(cfg))
    angles = jnp.concatenate([angles, angles], axis=-1)[:, :, None, :]
    return jnp.cos(angles), jnp.sin(angles)


def apply_rotary(x: Array, cos: Array, sin: Array) -> Array:
    """Rotates [b, length, heads, head_dim] by the tables (half-split pairs, as transformers)."""
    x32 = x.astype(jnp.float32)
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x32[..., half:], x32[..., :half]], axis=-1)
    return (x32 * cos + rotated * sin).astype(x.dtype)


# ---------------------------------------------------------------------------------------------
# Layers.


def _normal(stddev: float = 0.02) -> Any:
    return nn.initializers.normal(stddev=stddev)


class RMSNorm(nn.Module):
    """x / rms(x) * (offset + scale) in fp32; Gemma stores scale - 1 (offset 1, zeros init)."""

    epsilon: float
    offset: float
    dtype: Any
    param_dtype: Any

    @nn.compact
    def __call__(self, x: Array) -> Array:
        init = nn.initializers.zeros if self.offset else nn.initializers.ones
        scale = self.param(
            "scale",
            nn.with_logical_partitioning(init, ("embed",)),
            (x.shape[-1],),
            self.param_dtype,
        )
        x32 = x.astype(jnp.float32)
        x32 = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + self.epsilon)
        return (x32 * (self.offset + scale.astype(jnp.float32))).astype(self.dtype)


class TokenEmbedder(nn.Module):
    """The token table ("vocab", "embed"); `attend` gives tied logits."""

    vocab_size: int
    features: int
    dtype: Any
    param_dtype: Any

    def setup(self) -> None:
        self.embedding = self.param(
            "embedding",
            nn.with_logical_partitioning(_normal(), ("vocab", "embed")),
            (self.vocab_size, self.features),
            self.param_dtype,
        )

    def __call__(self, ids: Array) -> Array:
        return jnp.take(self.embedding.astype(self.dtype), ids, axis=0)

    def attend(self, x: Array) -> Array:
        return output_logits(x, self.embedding, self.dtype, tied=True)


def _dropout(
    x: Array, rate: float, deterministic: bool, broadcast_dims: tuple[int, ...] = (-2,)
) -> Array:
    """Dropout that is free at rate 0. Hidden activations [b, t, d] share one mask along the
    length (axis -2), as T5's; attention weights pass ``broadcast_dims=()`` (one draw each)."""
    if rate == 0.0 or deterministic:
        return x
    return nn.Dropout(rate=rate, broadcast_dims=broadcast_dims)(x, deterministic=False)


class Attention(nn.Module):
    """Grouped-query self-attention with rotary positions and an optional KV cache.

    Kernels: query [d, heads, head_dim], key / value [d, kv_heads, head_dim] (the "kv_heads"
    axis has no partitioning rule, so K/V projections are replicated while query heads split
    over "model"), out [heads, head_dim, d]; Qwen2 adds q/k/v biases [heads, head_dim].
    """

    config: RopeDecoderConfig

    @nn.compact
    def __call__(
        self,
        x: Array,
        cos: Array,
        sin: Array,
        mask: Array,
        deterministic: bool,
        decode: bool,
        decode_index: Array | None,
    ) -> Array:
        cfg = self.config
        dtype, param_dtype = jnp.dtype(cfg.dtype), jnp.dtype(cfg.param_dtype)
        d, h, g, k = cfg.d_model, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim

        def kernel(name: str, axes: tuple[str, ...], shape: tuple[int, ...]) -> Array:
            init = nn.with_logical_partitioning(_normal(), axes)
            return self.param(name, init, shape, param_dtype).astype(dtype)

        def project(name: str, heads: int, axis: str) -> Array:
            y = dense(x, kernel(name, ("embed", axis, "kv"), (d, heads, k)))  # [b, s, heads, k]
            if cfg.qkv_bias:
                bias_init = nn.with_logical_partitioning(nn.initializers.zeros, (axis, "kv"))
                y = y + self.param(f"{name}_bias", bias_init, (heads, k), param_dtype).astype(dtype)
            return y

        act = ("batch", "length", "heads", "kv")
        q = nn.with_logical_constraint(apply_rotary(project("query", h, "heads"), cos, sin), act)
        key = apply_rotary(project("key", g, "kv_heads"), cos, sin)
        value = project("value", g, "kv_heads")

        if decode:
            cached_key = self.variable("cache", "cached_key", jnp.zeros, key.shape, key.dtype)
            cached_value = self.variable(
                "cache", "cached_value", jnp.zeros, value.shape, value.dtype
            )
            if decode_index is not None:
                start = (0, decode_index, 0, 0)
                key = jax.lax.dynamic_update_slice(cached_key.value, key, start)
                value = jax.lax.dynamic_update_slice(cached_value.value, value, start)
                cached_key.value, cached_value.value = key, value

        b, q_len = q.shape[:2]
        q = q.reshape(b, q_len, g, h // g, k)  # query heads grouped by the K/V head they share
        logits = jnp.einsum("bqnjk,bsnk->bnjqs", q, key, preferred_element_type=jnp.float32)
        logits = logits * np.float32(k**-0.5)
        logits = jnp.where(mask[:, :, None], logits, _MASKED)  # mask [b or 1, 1, q, s]
        weights = softmax(logits).astype(dtype)  # layers.softmax: the cheaper backward
        # Per element: weights are [b, n, j, q, s], so a length-broadcast mask (axis -2) would
        # drop the same keys for every query.
        weights = _dropout(weights, cfg.dropout_rate, deterministic, broadcast_dims=())
        out = jnp.einsum("bnjqs,bsnk->bqnjk", weights, value).reshape(b, q_len, h, k)
        out = nn.with_logical_constraint(out, act)
        return dense(out, kernel("out", ("heads", "kv", "embed"), (h, k, d)), contract=2)


class Mlp(nn.Module):
    """wo(act(wi_0 x) * wi_1 x): gate, up and down projections (SwiGLU or GeGLU)."""

    config: RopeDecoderConfig

    @nn.compact
    def __call__(self, x: Array, deterministic: bool) -> Array:
        cfg = self.config
        dtype, param_dtype = jnp.dtype(cfg.dtype), jnp.dtype(cfg.param_dtype)

        def kernel(name: str, axes: tuple[str, ...], shape: tuple[int, ...]) -> Array:
            init = nn.with_logical_partitioning(_normal(), axes)
            return self.param(name, init, shape, param_dtype).astype(dtype)

        d, f = cfg.d_model, cfg.d_ff
        gate = dense(x, kernel("wi_0", ("embed", "mlp"), (d, f)))  # see layers.tokens_as_rows
        if cfg.activation == "silu":
            gate = jax.nn.silu(gate)
        else:
            gate = jax.nn.gelu(gate, approximate=True)
        hidden = gate * dense(x, kernel("wi_1", ("embed", "mlp"), (d, f)))
        hidden = nn.with_logical_constraint(hidden, ("batch", "length", "mlp"))
        hidden = _dropout(hidden, cfg.dropout_rate, deterministic)
        return dense(hidden, kernel("wo", ("mlp", "embed"), (f, d)))


class DecoderLayer(nn.Module):
    """Pre-norm attention and MLP blocks with residuals."""

    config: RopeDecoderConfig

    @nn.compact
    def __call__(
        self,
        x: Array,
        cos: Array,
        sin: Array,
        mask: Array,
        deterministic: bool,
        decode: bool,
        decode_index: Array | None,
    ) -> Array:
        cfg = self.config
        dtype, param_dtype = jnp.dtype(cfg.dtype), jnp.dtype(cfg.param_dtype)

        def norm(name: str) -> RMSNorm:
            return RMSNorm(cfg.norm_epsilon, cfg.norm_offset, dtype, param_dtype, name=name)

        y = norm("pre_self_attention_layer_norm")(x)
        y = Attention(cfg, name="self_attention")(
            y, cos, sin, mask, deterministic, decode, decode_index
        )
        x = x + _dropout(y, cfg.dropout_rate, deterministic)
        y = Mlp(cfg, name="mlp")(norm("pre_mlp_layer_norm")(x), deterministic)
        x = x + _dropout(y, cfg.dropout_rate, deterministic)
        return nn.with_logical_constraint(x, ("batch", "length", "embed"))


class RopeDecoder(nn.Module):
    """The causal LM: tokens [b, t] (seqio prefix-LM batch keys) -> fp32 logits [b, t, vocab]."""

    config: RopeDecoderConfig

    @nn.compact
    def __call__(
        self,
        decoder_input_tokens: Array,
        decoder_target_tokens: Array | None = None,
        decoder_segment_ids: Array | None = None,
        decoder_positions: Array | None = None,
        decoder_causal_attention: Array | None = None,
        enable_dropout: bool = False,
        decode: bool = False,
        return_hidden: bool = False,
    ) -> Array:
        """fp32 logits [b, t, vocab]; with `return_hidden`, the final hidden states [b, t, d]
        instead, which the family's `head_logits` turns into the same logits (the training loss
        takes them at the target positions only)."""
        del decoder_causal_attention  # always causal (see the module docstring)
        cfg = self.config
        dtype, param_dtype = jnp.dtype(cfg.dtype), jnp.dtype(cfg.param_dtype)
        deterministic = not enable_dropout
        batch, length = decoder_input_tokens.shape

        decode_index = None
        if decode:
            initialized = self.has_variable("cache", "cache_index")
            cache_index = self.variable("cache", "cache_index", jnp.zeros, (), jnp.int32)
            next_position = self.variable("cache", "next_position", jnp.zeros, (), jnp.int32)
            key_positions = self.variable(
                "cache", "key_positions", jnp.full, (length,), _HIDDEN_POSITION, jnp.int32
            )
            if initialized:
                decode_index = cache_index.value
                query = next_position.value + jnp.arange(length, dtype=jnp.int32)
                key_positions.value = jax.lax.dynamic_update_slice(
                    key_positions.value, query, (decode_index,)
                )
                cache_index.value = decode_index + length
                next_position.value = next_position.value + length
        if decode_index is not None:
            positions = query[None, :]
            mask = (key_positions.value[None, :] <= query[:, None])[None, None]  # [1, 1, q, s]
        else:
            if decoder_positions is None:
                positions = jnp.arange(length, dtype=jnp.int32)[None, :]
            else:
                positions = decoder_positions
            # Causality by row index; positions restart per packed segment, segment ids keep
            # the segments apart. Keys must be real tokens (targets > 0).
            idx = jnp.arange(length)
            mask = (idx[None, :] <= idx[:, None])[None]
            if decoder_target_tokens is not None:
                mask = mask & (decoder_target_tokens > 0)[:, None, :]
            if decoder_segment_ids is not None:
                same = decoder_segment_ids[:, :, None] == decoder_segment_ids[:, None, :]
                mask = mask & same
            mask = mask[:, None]  # [b or 1, 1, q, s]

        tokens = decoder_input_tokens
        if cfg.bos_token_id is not None:
            tokens = jnp.where(positions == 0, cfg.bos_token_id, tokens)
        embedder = TokenEmbedder(
            cfg.vocab_size, cfg.d_model, dtype, param_dtype, name="token_embedder"
        )
        x = embedder(tokens)
        if cfg.scale_embeddings:
            # As the reference: the multiplier rounded to the activation dtype.
            x = x * jnp.asarray(math.sqrt(cfg.d_model), dtype)
        x = nn.with_logical_constraint(x, ("batch", "length", "embed"))
        x = _dropout(x, cfg.dropout_rate, deterministic)
        cos, sin = rotary_tables(cfg, positions)

        # Arguments 5 and 6 (`deterministic`, `decode`; `self` counts as 0) are Python bools.
        layer_cls = nn.remat(DecoderLayer, static_argnums=(5, 6)) if cfg.remat else DecoderLayer
        for i in range(cfg.num_layers):
            x = layer_cls(cfg, name=f"layers_{i}")(
                x, cos, sin, mask, deterministic, decode, decode_index
            )
        x = RMSNorm(cfg.norm_epsilon, cfg.norm_offset, dtype, param_dtype, name="decoder_norm")(x)
        x = _dropout(x, cfg.dropout_rate, deterministic)
        if cfg.tie_word_embeddings:
            table = embedder.embedding
        else:
            table = self.param(
                "logits_dense",
                nn.with_logical_partitioning(_normal(), ("embed", "vocab")),
                (cfg.d_model, cfg.vocab_size),
                param_dtype,
            )
        if return_hidden:
            return x
        return output_logits(x, table, dtype, tied=cfg.tie_word_embeddings)


# ---------------------------------------------------------------------------------------------
# Cache rows (the shared index and positions stay; the K/V buffers follow their rows).


def prefill_prompt(
    model: RopeDecoder, params: Any, prompt: Array, cache_length: int
) -> tuple[dict, Array]:
    """One right-padded prompt [s] into a fresh batch-1 cache of `cache_length` slots.

    The chunk is seqio's layout (token 0, the n real input tokens, padding up to s + 1 slots).
    Returns the cache with the padding slots hidden and the next position set right after the
    real prompt, and the logits [1, vocab] of its last real position (they predict the first
    target token).
    """
    s = prompt.shape[0]
    n = jnp.sum(prompt > 0)
    cache = lm_decoding.init_cache(model, 1, cache_length)
    logits, mutated = model.apply(
        {"params": params, "cache": cache},
        jnp.pad(prompt, (1, 0))[None, :],
        decode=True,
        mutable=["cache"],
    )
    cache = dict(mutated["cache"])
    slots = jnp.arange(cache_length, dtype=jnp.int32)
    cache["key_positions"] = jnp.where(
        (slots > n) & (slots <= s), _HIDDEN_POSITION, cache["key_positions"]
    ).astype(jnp.int32)
    cache["next_position"] = (n + 1).astype(jnp.int32)
    return cache, jax.lax.dynamic_index_in_dim(logits[0], n, axis=0, keepdims=True)


# ---------------------------------------------------------------------------------------------
# The family hooks.


class RopeDecoderFamily(family.Family):
    """Hooks shared by the RoPE decoder families; subclasses set the names, config class and
    sizes. Cached scoring and decoding vmap over examples (each prompt is prefilled alone)."""

    batch_layout = "prefix_lm"

    def build(self, config: RopeDecoderConfig) -> RopeDecoder:
        return RopeDecoder(config)

    def report_name(self, config: RopeDecoderConfig) -> str:
        size = self.size_of(config)
        if size is not None:
            return f"{self.display_name} {size}"
        return (
            f"{self.display_name} d_model={config.d_model}, layers={config.num_layers}, "
            f"heads={config.num_heads}/{config.num_kv_heads}"
        )

    def model_feature_lengths(
        self, config: RopeDecoderConfig, task_feature_lengths: Mapping[str, int]
    ) -> dict[str, int]:
        return {"decoder_target_tokens": sum(task_feature_lengths.values())}

    def logit_row_budget(
        self, config: RopeDecoderConfig, task_feature_lengths: Mapping[str, int]
    ) -> int | None:
        return family.prefix_lm_loss_positions(task_feature_lengths)

    def head_logits(self, config: RopeDecoderConfig, params: Any, hidden: Array) -> Array:
        tied = config.tie_word_embeddings
        table = params["token_embedder"]["embedding"] if tied else params["logits_dense"]
        return output_logits(hidden, table, jnp.dtype(config.dtype), tied=tied)

    def param_count(self, config: RopeDecoderConfig) -> int:
        d, h, g, k, f = (
            config.d_model,
            config.num_heads,
            config.num_kv_heads,
            config.head_dim,
            config.d_ff,
        )
        attn = 2 * d * h * k + 2 * d * g * k  # query, out; key, value
        if config.qkv_bias:
            attn += h * k + 2 * g * k
        layer = attn + 3 * d * f + 2 * d  # + gate, up, down; two norms
        embeddings = config.vocab_size * d * (1 if config.tie_word_embeddings else 2)
        return embeddings + config.num_layers * layer + d

    def train_flops_per_example(
        self, config: RopeDecoderConfig, task_feature_lengths: Mapping[str, int]
    ) -> float:
        """3x forward (matmuls 2mkn, gathers and elementwise ops free) over the concatenated
        sequence S = inputs + targets: projections (grouped K/V), the full S x S square of
        attention scores and values (as `decoder.py` counts), the gated MLP, and logits at the
        target positions, the only ones the training loss computes them at (`head_logits`)."""
        d, h, g, k, f, v = (
            config.d_model,
            config.num_heads,
            config.num_kv_heads,
            config.head_dim,
            config.d_ff,
            config.vocab_size,
        )
        s = sum(task_feature_lengths.values())
        block = 2 * s * (2 * d * h * k + 2 * d * g * k + 3 * d * f) + 4 * s * s * h * k
        t = self.logit_row_budget(config, task_feature_lengths) or s
        return 3.0 * float(config.num_layers * block + 2 * t * d * v)

    def init_decode_cache(
        self,
        model: RopeDecoder,
        batch_size: int,
        max_decode_length: int,
        encoder_length: int | None = None,
    ) -> dict:
        del encoder_length  # no encoder
        return lm_decoding.init_cache(model, batch_size, max_decode_length)

    def row_scorer(self, model: RopeDecoder, prefix_lm: bool) -> ModelFn:
        del prefix_lm  # always causal

        def score(params, inputs, targets):
            batch, is_target = lm_decoding.prefix_lm_batch(inputs, targets)
            logits = model.apply({"params": params}, **batch)
            return target_scores(logits, batch["decoder_target_tokens"], is_target)

        return ModelFn(score)

    def option_scorer(self, model: RopeDecoder, prefix_lm: bool) -> ModelFn:
        """Prefills each prompt once and scores every option from copies of its cache."""
        del prefix_lm  # always causal
        return lm_decoding.option_scorer(model, self._prefill(model), _SHARED_CACHE)

    def stepper(
        self, model: RopeDecoder, copies: int, max_len: int, use_cache: bool, prefix_lm: bool
    ) -> ModelFn:
        del prefix_lm

        def make(params: Any, inputs: Array) -> Stepper:
            return self._stepper(model, params, inputs, copies, max_len, use_cache)

        return ModelFn(make, vmaps_examples=use_cache)

    def _stepper(
        self,
        model: RopeDecoder,
        params: Any,
        inputs: Array,
        copies: int,
        max_len: int,
        use_cache: bool,
    ) -> Stepper:
        return lm_decoding.lm_stepper(
            model,
            params,
            inputs,
            copies,
            max_len,
            use_cache,
            prefill=self._prefill(model),
            shared=_SHARED_CACHE,
        )

    def _prefill(self, model: RopeDecoder) -> lm_decoding.Prefill:
        return lambda params, prompt, length: prefill_prompt(model, params, prompt, length)
