"""The decoder-only family: `DecoderConfig`, its preset sizes, the `DecoderOnly` LM (T5 1.1 blocks,
causal relative positions, optional prefix-LM attention) and the family hooks (`DecoderFamily`).

Batches are seqio's DecoderFeatureConverter / PrefixLMFeatureConverter ones: inputs and targets
concatenated into one sequence, the prompt (inputs plus one position) attending bidirectionally
when `decoder_causal_attention` is given. See `stack.py` for the KV-cache decoding protocol.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from flan_jax.models import family, lm_decoding
from flan_jax.models.family import ModelConfig, ModelFn, Stepper
from flan_jax.models.layers import Array, Embed, output_logits
from flan_jax.models.losses import target_scores
from flan_jax.models.stack import SHARED_CACHE_LEAVES, DecoderStack

# Key positions given to hidden cache slots: larger than any query position, so the decoder's
# "key position <= query position" mask never shows them.
_HIDDEN_POSITION = 2**30


@dataclasses.dataclass(frozen=True)
class DecoderConfig(ModelConfig):
    """Decoder-only LM (T5 1.1 blocks, causal relative positions). Defaults are `tiny`."""

    vocab_size: int = 32128
    d_model: int = 64
    num_heads: int = 4
    head_dim: int = 16
    d_ff: int = 128
    num_layers: int = 2
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout_rate: float = 0.0
    layer_norm_epsilon: float = 1e-6
    dtype: str = "float32"
    param_dtype: str = "float32"
    remat: bool = False

    def __post_init__(self) -> None:
        family.check_block_fields(self)
        family.check_positive(self, "num_layers")


# Decoder-only sizes (ours, no published counterpart). Parameters at vocab 32128:
#   tiny   ~4.2M (almost all embeddings)
#   small  ~106M  d 768,  12 x 64 heads,  d_ff 2048, 8 layers
#   base   ~955M  d 2048, 16 x 128 heads, d_ff 5632, 16 layers
#   large  ~2.7B  d 2560, 20 x 128 heads, d_ff 6912, 32 layers
# gin/models/decoder_<size>.gin bind the same values (tests/test_model_presets.py checks it).
DECODER_SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(d_model=64, num_heads=4, head_dim=16, d_ff=128, num_layers=2),
    "small": dict(d_model=768, num_heads=12, head_dim=64, d_ff=2048, num_layers=8),
    "base": dict(d_model=2048, num_heads=16, head_dim=128, d_ff=5632, num_layers=16),
    "large": dict(d_model=2560, num_heads=20, head_dim=128, d_ff=6912, num_layers=32),
}


# ---------------------------------------------------------------------------------------------
# The module.


class DecoderOnly(nn.Module):
    """Decoder-only LM; causal, or prefix-LM when `decoder_causal_attention` is given."""

    config: DecoderConfig

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
        """Token ids [b, t] (seqio DecoderFeatureConverter / PrefixLMFeatureConverter keys) ->
        logits [b, t, vocab] in fp32, or with `return_hidden` the final hidden states [b, t, d]
        (the family's `head_logits` makes the same logits of them). See `stack.py` for
        `decode=True`."""
        cfg = self.config
        embedder = Embed(
            cfg.vocab_size,
            cfg.d_model,
            jnp.dtype(cfg.dtype),
            jnp.dtype(cfg.param_dtype),
            name="token_embedder",
        )
        return DecoderStack(
            cfg, cfg.num_layers, cross_attention=False, embedder=embedder, name="decoder"
        )(
            decoder_input_tokens,
            decoder_target_tokens=decoder_target_tokens,
            decoder_segment_ids=decoder_segment_ids,
            decoder_positions=decoder_positions,
            decoder_causal_attention=decoder_causal_attention,
            deterministic=not enable_dropout,
            decode=decode,
            return_hidden=return_hidden,
        )


# ---------------------------------------------------------------------------------------------
# Prompts into the KV cache (shared by scoring and decoding).


def prefill_prompt(
    model: DecoderOnly, params: Any, prompt: Array, cache_length: int, prefix_lm: bool
) -> tuple[dict, Array]:
    """Runs one prompt [s] into a fresh batch-1 KV cache of `cache_length` slots.

    The prompt is laid out as seqio's prefix-LM does (token 0, then the n real input tokens,
    then padding up to s + 1 slots). Returns the cache, re-labelled so the next chunk continues
    right after the real prompt (see `_relabel_positions`), and the logits [1, vocab] of the
    prompt's last real position (they predict the first target token).
    """
    s = prompt.shape[0]
    n = jnp.sum(prompt > 0)
    chunk = jnp.pad(prompt, (1, 0))[None, :]  # [1, s + 1]: BOS 0, inputs, padding
    cache = lm_decoding.init_cache(model, 1, cache_length)
    marker = None
    if prefix_lm:
        marker = (jnp.arange(s + 1) <= n).astype(jnp.int32)[None, :]
    logits, mutated = model.apply(
        {"params": params, "cache": cache},
        chunk,
        decoder_causal_attention=marker,
        decode=True,
        mutable=["cache"],
    )
    cache = _relabel_positions(mutated["cache"], n, s)
    return cache, jax.lax.dynamic_index_in_dim(logits[0], n, axis=0, keepdims=True)


def _relabel_positions(cache: dict, n: Array, s: int) -> dict:
    """Key positions that make a right-padded prompt look contiguous to later chunks.

    The model's cache keeps one position per slot ("key_positions", shared by the batch, which
    is why the cached paths vmap over examples). Later chunks are written from slot s + 1 with
    query position = slot; shifting the real prompt slots 0..n by s - n puts the last one right
    before it, and the padding slots n+1..s get a position no query reaches (masked). Relative
    position biases only see differences, so the result equals the unpadded sequence.
    """
    slots = jnp.arange(cache["decoder"]["key_positions"].shape[0], dtype=jnp.int32)
    positions = jnp.where(
        slots <= n, slots + (s - n), jnp.where(slots <= s, _HIDDEN_POSITION, slots)
    ).astype(jnp.int32)
    decoder = dict(cache["decoder"], key_positions=positions)
    return dict(cache, decoder=decoder)


# ---------------------------------------------------------------------------------------------
# The family hooks.


class DecoderFamily(family.Family):
    """Decoder-only LM: prefix-LM batches; cached scoring and decoding vmap over examples,
    because the cache keeps one set of key positions for all its rows and prompts differ in
    length."""

    name = "decoder"
    display_name = "decoder-only"
    config_class = DecoderConfig
    batch_layout = "prefix_lm"
    sizes = DECODER_SIZES

    def build(self, config: DecoderConfig) -> DecoderOnly:
        return DecoderOnly(config)

    def model_feature_lengths(
        self, config: DecoderConfig, task_feature_lengths: Mapping[str, int]
    ) -> dict[str, int]:
        return {"decoder_target_tokens": sum(task_feature_lengths.values())}

    def logit_row_budget(
        self, config: DecoderConfig, task_feature_lengths: Mapping[str, int]
    ) -> int | None:
        return family.prefix_lm_loss_positions(task_feature_lengths)

    def head_logits(self, config: DecoderConfig, params: Any, hidden: Array) -> Array:
        kernel = params["decoder"]["logits_dense"]
        return output_logits(hidden, kernel, jnp.dtype(config.dtype))

    def param_count(self, config: DecoderConfig) -> int:
        d, a, f = config.d_model, config.num_heads * config.head_dim, config.d_ff
        attn = 4 * d * a  # q, k, v, o
        mlp = 3 * d * f  # wi_0, wi_1, wo
        relpos = config.relative_attention_num_buckets * config.num_heads
        embeddings = 2 * config.vocab_size * d  # input embedding + untied logits kernel
        return embeddings + config.num_layers * (attn + mlp + 2 * d) + d + relpos

    def train_flops_per_example(
        self, config: DecoderConfig, task_feature_lengths: Mapping[str, int]
    ) -> float:
        """3x forward (matmuls 2mkn; gathers free): T5's per-layer terms over the concatenated
        sequence S = inputs + targets (the prefix-LM layout, loss on the targets only);
        attention scores counted over the full S x S square as t5.md does for the causal
        decoder, and logits counted at the target positions, the only ones the training loss
        computes them at (`head_logits`)."""
        d, a, f, v = (
            config.d_model,
            config.num_heads * config.head_dim,
            config.d_ff,
            config.vocab_size,
        )
        s = sum(task_feature_lengths.values())

        def block(s: int) -> float:  # self-attention (projections + scores/values) and MLP
            return 2 * s * (4 * d * a + 3 * d * f) + 4 * s * s * a

        t = self.logit_row_budget(config, task_feature_lengths) or s
        fwd = config.num_layers * block(s) + 2 * t * d * v
        return 3.0 * float(fwd)

    def init_decode_cache(
        self,
        model: DecoderOnly,
        batch_size: int,
        max_decode_length: int,
        encoder_length: int | None = None,
    ) -> dict:
        del encoder_length  # no encoder
        return lm_decoding.init_cache(model, batch_size, max_decode_length)

    def row_scorer(self, model: DecoderOnly, prefix_lm: bool) -> ModelFn:
        def score(params, inputs, targets):
            batch, is_target = lm_decoding.prefix_lm_batch(inputs, targets, prefix_lm)
            logits = model.apply({"params": params}, **batch)
            return target_scores(logits, batch["decoder_target_tokens"], is_target)

        return ModelFn(score)

    def option_scorer(self, model: DecoderOnly, prefix_lm: bool) -> ModelFn:
        """Prefills each prompt into a KV cache once and scores every option from copies."""

        def prefill(params: Any, prompt: Array, length: int) -> tuple[dict, Array]:
            return prefill_prompt(model, params, prompt, length, prefix_lm)

        return lm_decoding.option_scorer(model, prefill, SHARED_CACHE_LEAVES)

    def stepper(
        self, model: DecoderOnly, copies: int, max_len: int, use_cache: bool, prefix_lm: bool
    ) -> ModelFn:
        """With the cache: each prompt prefilled as one prefix-LM chunk, per example (vmap)."""

        def make(params: Any, inputs: Array) -> Stepper:
            return _lm_stepper(model, params, inputs, copies, max_len, use_cache, prefix_lm)

        return ModelFn(make, vmaps_examples=use_cache)


def _lm_stepper(
    model: DecoderOnly,
    params: Any,
    inputs: Array,
    copies: int,
    max_len: int,
    use_cache: bool,
    prefix_lm: bool,
) -> Stepper:
    return lm_decoding.lm_stepper(
        model,
        params,
        inputs,
        copies,
        max_len,
        use_cache,
        prefill=lambda p, prompt, length: prefill_prompt(model, p, prompt, length, prefix_lm),
        shared=SHARED_CACHE_LEAVES,
        prefix_lm=prefix_lm,
    )


FAMILY = family.register(DecoderFamily())


def decoder_config(size: str, **overrides: Any) -> DecoderConfig:
    """A decoder-only preset by name (`DECODER_SIZES`), with field overrides."""
    return FAMILY.preset(size, **overrides)
