"""Decoding machinery shared by the decoder-only families (`decoder`, `rope_decoder`).

Both lay a prompt out as seqio's prefix-LM converter does (token 0, the real input tokens, then
padding up to s + 1 slots) and generate after it, with or without a KV cache. What differs per
family is how a prompt is prefilled into a cache and which cache leaves are shared by every row
(indices and key positions, as opposed to per-row K/V buffers); those come in as arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import jax
import jax.numpy as jnp

from flan_jax.models.family import ModelFn, Stepper
from flan_jax.models.layers import Array
from flan_jax.models.losses import shift_right, target_scores

# params, prompt [s], cache length -> (a batch-1 cache holding the prompt, logits [1, vocab] of
# its last real position, which predict the first target token).
Prefill = Callable[[Any, Array, int], tuple[Any, Array]]


def _leaf_name(path: Any) -> Any:
    return getattr(path[-1], "key", None)


def take_rows(cache: Any, rows: Array, shared: Collection[str]) -> Any:
    """The cache with row j taken from row `rows[j]` (beam search reorders its beams); the
    `shared` leaves and scalars are the same for every row and stay."""

    def take(path: Any, leaf: Array) -> Array:
        if _leaf_name(path) in shared or leaf.ndim == 0:
            return leaf
        return jnp.take(leaf, rows, axis=0)

    return jax.tree_util.tree_map_with_path(take, cache)


def copy_rows(cache: Any, k: int, shared: Collection[str]) -> Any:
    """A batch-1 cache copied to k rows (the `shared` leaves and scalars stay as they are)."""

    def tile(path: Any, leaf: Array) -> Array:
        if _leaf_name(path) in shared or leaf.ndim == 0:
            return leaf
        return jnp.broadcast_to(leaf, (k, *leaf.shape[1:]))

    return jax.tree_util.tree_map_with_path(tile, cache)


def init_cache(model: Any, batch_size: int, max_decode_length: int) -> dict:
    """A fresh KV cache for `batch_size` rows of `max_decode_length` slots."""
    tokens = jnp.ones((batch_size, max_decode_length), jnp.int32)

    def init(rng: jax.Array) -> dict:
        return model.init(rng, tokens, decode=True)["cache"]

    # Only the cache is returned, so XLA drops the parameter init and the forward pass.
    return jax.jit(init)(jax.random.key(0))


def option_scorer(model: Any, prefill: Prefill, shared: Collection[str]) -> ModelFn:
    """Rank classification from a shared prompt: each prompt is prefilled into a cache once and
    every option [K, t] is scored from a copy of it (vmapped over examples)."""

    def score_group(params: Any, prompt: Array, options: Array) -> Array:
        s = prompt.shape[0]
        k, t = options.shape
        cache, first = prefill(params, prompt, s + 1 + t)
        logits, _ = model.apply(
            {"params": params, "cache": copy_rows(cache, k, shared)},
            options,
            decode=True,
            mutable=["cache"],
        )
        # The prompt's last position predicts option token 0; option position j the next.
        first = jnp.broadcast_to(first, (k, 1, first.shape[-1]))
        return target_scores(jnp.concatenate([first, logits[:, :-1]], axis=1), options)

    return ModelFn(jax.vmap(score_group, in_axes=(None, 0, 0)), vmaps_examples=True)


def lm_stepper(
    model: Any,
    params: Any,
    inputs: Array,
    copies: int,
    max_len: int,
    use_cache: bool,
    *,
    prefill: Prefill,
    shared: Collection[str],
    prefix_lm: bool = False,
) -> Stepper:
    """A `Stepper` over prompts `inputs` [e, s], each decoded in `copies` rows (beams or samples).

    With the cache, each prompt is prefilled alone and its rows step together (vmapped over
    examples; beams move within their example). Without it, each row keeps one left-packed
    buffer [prompt slots 0..s | generated slots s+1..] and every step runs the whole buffer;
    the prompt's padding between the two parts is masked out (validity) and skipped by explicit
    positions, so the model sees one contiguous sequence. `prefix_lm` lets the prompt attend
    bidirectionally on that path (the cached path's prefill does the same through `prefill`).
    """
    e, s = inputs.shape
    if use_cache:

        def start_one(prompt: Array) -> tuple[Array, Any]:
            cache, first = prefill(params, prompt, s + 1 + max_len)
            return jnp.broadcast_to(first, (copies, first.shape[-1])), copy_rows(
                cache, copies, shared
            )

        def step_one(cache: Any, tokens: Array) -> tuple[Array, Any]:
            logits, mutated = model.apply(
                {"params": params, "cache": cache}, tokens[:, None], decode=True, mutable=["cache"]
            )
            return logits[:, 0], mutated["cache"]

        def start() -> tuple[Array, Any]:
            logits, cache = jax.vmap(start_one)(inputs)  # [e, copies, V], leaves [e, copies, ...]
            return logits.reshape(e * copies, -1), cache

        def step(cache: Any, tokens: Array, i: Array) -> tuple[Array, Any]:
            del i
            logits, cache = jax.vmap(step_one)(cache, tokens.reshape(e, copies))
            return logits.reshape(e * copies, -1), cache

        def reorder(cache: Any, rows: Array) -> Any:
            inner = rows.reshape(e, copies) - (jnp.arange(e) * copies)[:, None]
            return jax.vmap(lambda c, r: take_rows(c, r, shared))(cache, inner)

        return Stepper(start, step, reorder)

    total = s + 1 + max_len
    slots = jnp.arange(total)[None, :]
    n_rep = jnp.repeat(jnp.sum(inputs > 0, axis=1), copies)[:, None]  # [e * copies, 1]
    in_prompt = slots <= n_rep
    valid = in_prompt | (slots > s)
    positions = jnp.where(in_prompt, slots, jnp.where(slots > s, slots - s + n_rep, 0))
    batch = dict(
        decoder_target_tokens=valid.astype(jnp.int32),  # only its > 0 (validity) is used
        decoder_positions=positions.astype(jnp.int32),
    )
    if prefix_lm:
        batch["decoder_causal_attention"] = in_prompt.astype(jnp.int32)

    def full(buffer: Array, at: Array) -> Array:
        logits = model.apply({"params": params}, buffer, **batch)
        return jnp.take_along_axis(logits, at[:, None, None], axis=1)[:, 0]

    def start_nc() -> tuple[Array, Array]:
        prompt = jnp.repeat(jnp.pad(inputs, ((0, 0), (1, 0))), copies, axis=0)  # [n, s + 1]
        buffer = jnp.pad(prompt, ((0, 0), (0, max_len)))
        return full(buffer, n_rep[:, 0]), buffer

    def step_nc(buffer: Array, tokens: Array, i: Array) -> tuple[Array, Array]:
        buffer = jax.lax.dynamic_update_index_in_dim(buffer, tokens, s + 1 + i, axis=1)
        return full(buffer, jnp.full((buffer.shape[0],), s + 1 + i)), buffer

    return Stepper(start_nc, step_nc, lambda buf, rows: jnp.take(buf, rows, axis=0))


def prefix_lm_batch(
    inputs: Array, targets: Array, prefix_lm: bool = False
) -> tuple[dict[str, Array], Array]:
    """Rows [b, s] + [b, t] -> PrefixLM model batch over s + t slots and the loss weights.

    Each row is packed left (inputs, then targets, then padding) like seqio's converter; the
    prefix marker covers the inputs plus one position (only with `prefix_lm`: causal
    families attend causally over the whole row).
    """
    b, s = inputs.shape
    t = targets.shape[1]
    n_in = jnp.sum(inputs > 0, axis=1)
    n_tg = jnp.sum(targets > 0, axis=1)
    pos = jnp.arange(s + t)[None, :]
    # Slot j holds input j (j < n_in) or target j - n_in.
    from_inputs = jnp.take_along_axis(inputs, jnp.minimum(pos, s - 1).repeat(b, 0), axis=1)
    tg_index = jnp.clip(pos - n_in[:, None], 0, t - 1)
    from_targets = jnp.take_along_axis(targets, tg_index, axis=1)
    is_target = (pos >= n_in[:, None]) & (pos < (n_in + n_tg)[:, None])
    tokens = jnp.where(pos < n_in[:, None], from_inputs, jnp.where(is_target, from_targets, 0))
    batch = dict(decoder_input_tokens=shift_right(tokens), decoder_target_tokens=tokens)
    if prefix_lm:
        batch["decoder_causal_attention"] = (pos <= n_in[:, None]).astype(jnp.int32)
    return batch, is_target
