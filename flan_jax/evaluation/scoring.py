"""Rank-classification scoring: the log-likelihood of each target given its input.

A *row* is one (input, option) pair as token ids: ``{"inputs": [...], "targets": [...]}`` (EOS
included, as seqio produces them). ``score_rows`` returns, per row, the summed log-probability of
the target tokens (optionally divided by their number), jitted and sharded over the mesh with the
batch split over ("data", "fsdp").

Two paths that give the same numbers (tested to 1e-5):

* ``shared=True``: rows with identical inputs form a group (one example and its options). T5
  encodes each group's input once and decodes every option against that encoder output; the
  decoder-only model runs the prompt once into a KV cache and scores every option from copies of
  that cache. Batches hold G groups x K option slots (K = the largest group).
* ``shared=False``: every row runs the full model on its own (the reference, and the baseline
  of ``bench/eval_throughput.py``).

Decoder-only rows use seqio's prefix-LM layout (``PrefixLMFeatureConverter``): the sequence is
inputs + targets, the prompt (inputs plus one position) attends bidirectionally when
``prefix_lm=True``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from flan_jax import partitioning
from flan_jax.models import T5, DecoderOnly, init_decode_cache
from flan_jax.models.losses import per_example_length, per_example_logprob

Row = Mapping[str, Sequence[int]]
# Key positions given to hidden cache slots: larger than any query position, so the decoder's
# "key position <= query position" mask never shows them.
_HIDDEN_POSITION = 2**30


# ---------------------------------------------------------------------------------------------
# Helpers shared with decoding.py.


def model_rules(rules: partitioning.AxisRules | None) -> partitioning.AxisRules:
    """The axis rules to trace the model under (default: T5X 1D)."""
    return rules if rules is not None else partitioning.logical_axis_rules("1d")


def rules_without_batch(rules: partitioning.AxisRules) -> partitioning.AxisRules:
    """Rules for code that `vmap`s the model over examples.

    Inside a vmap the model's "batch" axis is the per-example option/beam axis (size K), not the
    examples; constraining it over data x fsdp would be wrong, so it is replicated and the
    example axis keeps the sharding of the inputs.
    """
    return (("batch", None),) + tuple(r for r in rules if r[0] != "batch")


@functools.lru_cache(maxsize=8)
def abstract_params(model: nn.Module) -> Any:
    """Boxed abstract params (logical axis names) from `eval_shape(init)`: nothing compiles."""
    tokens = jnp.ones((1, 4), jnp.int32)
    args = (tokens, tokens) if isinstance(model, T5) else (tokens,)
    return jax.eval_shape(model.init, jax.random.key(0), *args)["params"]


def place_params(
    model: nn.Module, params: Any, mesh: Mesh, rules: partitioning.AxisRules | None = None
) -> Any:
    """Params laid out on `mesh` by their logical axes (a no-op for params already there)."""
    shardings = partitioning.param_shardings(abstract_params(model), mesh, model_rules(rules))
    return jax.device_put(nn.meta.unbox(params), shardings)


def batch_unit(batch_size: int, mesh: Mesh) -> int:
    """`batch_size` rounded up to a multiple of the data-parallel size (at least one each)."""
    dp = partitioning.data_parallel_size(mesh)
    return max(dp, math.ceil(max(batch_size, 1) / dp) * dp)


def pad_ids(ids: Sequence[int], length: int) -> np.ndarray:
    """Token ids truncated / zero-padded to `length`."""
    out = np.zeros((length,), np.int32)
    ids = np.asarray(ids, np.int32)[:length]
    out[: len(ids)] = ids
    return out


def to_mesh(x: np.ndarray, mesh: Mesh) -> jax.Array:
    """A host array with its leading (batch) dim split over data x fsdp."""
    spec = P(partitioning.BATCH_AXES, *([None] * (x.ndim - 1)))
    return jax.device_put(x, NamedSharding(mesh, spec))


def shift_right(targets: jax.Array) -> jax.Array:
    """Decoder inputs for teacher forcing: 0 (BOS = pad) then the targets minus the last."""
    return jnp.pad(targets, ((0, 0), (1, 0)))[:, :-1]


def on_mesh(fn: Any, mesh: Mesh, rules: partitioning.AxisRules) -> Any:
    """`fn` called (and so traced) with `mesh` and `rules` current, so the models' logical
    activation constraints resolve to mesh axes (`jax.set_mesh` cannot be entered under jit)."""

    @functools.wraps(fn)
    def call(*args: Any) -> Any:
        with partitioning.with_sharding_rules(mesh, rules):
            return fn(*args)

    return call


def _target_scores(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """[..., 2]: summed target log-probability and number of target tokens, per row.

    Length normalization divides the two on the host, so it costs no extra compilation.
    """
    weights = targets > 0
    return jnp.stack(
        [per_example_logprob(logits, targets, weights), per_example_length(weights)], axis=-1
    )


# ---------------------------------------------------------------------------------------------
# The jitted scorers (one per model kind and path; jit caches the shapes).


def _prefix_lm_batch(
    inputs: jax.Array, targets: jax.Array, prefix_lm: bool
) -> tuple[dict[str, jax.Array], jax.Array]:
    """Rows [b, s] + [b, t] -> PrefixLM model batch over s + t slots and the loss weights.

    Each row is packed left (inputs, then targets, then padding) like seqio's converter; the
    prefix marker covers the inputs plus one position.
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


@functools.lru_cache(maxsize=32)
def _naive_fn(model: nn.Module, mesh: Mesh, rules: partitioning.AxisRules, prefix_lm: bool):
    """jit(params, inputs [b, s], targets [b, t]) -> [b, 2] (log-prob, length): one full
    forward per row."""

    def score(params, inputs, targets):
        if isinstance(model, T5):
            logits = model.apply(
                {"params": params}, inputs, shift_right(targets), decoder_target_tokens=targets
            )
            return _target_scores(logits, targets)
        batch, is_target = _prefix_lm_batch(inputs, targets, prefix_lm)
        logits = model.apply({"params": params}, **batch)
        tokens = batch["decoder_target_tokens"]
        return jnp.stack(
            [per_example_logprob(logits, tokens, is_target), per_example_length(is_target)],
            axis=-1,
        )

    return on_mesh(jax.jit(score), mesh, rules)


@functools.lru_cache(maxsize=32)
def _shared_fn(model: nn.Module, mesh: Mesh, rules: partitioning.AxisRules, prefix_lm: bool):
    """jit(params, inputs [G, s], options [G, K, t]) -> [G, K, 2] (log-prob, length); each
    input computed once."""
    if isinstance(model, T5):

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
            return _target_scores(logits, targets).reshape(g, k, 2)

        return on_mesh(jax.jit(score), mesh, rules)

    if not isinstance(model, DecoderOnly):
        raise TypeError(f"score_rows: unsupported model {type(model).__name__}")

    def score_group(params, prompt, options):
        """One example: prompt [s], options [K, t] -> [K] (vmapped over examples)."""
        s = prompt.shape[0]
        k, t = options.shape
        cache, first_logits = prefill_prompt(model, params, prompt, s + 1 + t, prefix_lm)
        cache = broadcast_cache(cache, k)
        logits, _ = model.apply(
            {"params": params, "cache": cache}, options, decode=True, mutable=["cache"]
        )
        # The prompt's last position predicts the first target token; option position j the next.
        logits = jnp.concatenate(
            [jnp.broadcast_to(first_logits, (k, 1, first_logits.shape[-1])), logits[:, :-1]],
            axis=1,
        )
        return _target_scores(logits, options)

    score = jax.vmap(score_group, in_axes=(None, 0, 0))
    return on_mesh(jax.jit(score), mesh, rules_without_batch(rules))


def prefill_prompt(
    model: nn.Module, params: Any, prompt: jax.Array, cache_length: int, prefix_lm: bool
) -> tuple[dict, jax.Array]:
    """Runs one decoder-only prompt [s] into a fresh batch-1 KV cache of `cache_length` slots.

    The prompt is laid out as seqio's prefix-LM does (token 0, then the n real input tokens,
    then padding up to s + 1 slots). Returns the cache, re-labelled so the next chunk continues
    right after the real prompt (see `_relabel_positions`), and the logits [1, vocab] of the
    prompt's last real position (they predict the first target token).
    """
    s = prompt.shape[0]
    n = jnp.sum(prompt > 0)
    chunk = jnp.pad(prompt, (1, 0))[None, :]  # [1, s + 1]: BOS 0, inputs, padding
    cache = init_decode_cache(model, batch_size=1, max_decode_length=cache_length)
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


def _relabel_positions(cache: dict, n: jax.Array, s: int) -> dict:
    """Key positions that make a right-padded prompt look contiguous to later chunks.

    The model's cache keeps one position per slot ("key_positions", shared by the batch, which
    is why decoder-only paths vmap over examples). Later chunks are written from slot s + 1 with
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


def broadcast_cache(cache: dict, k: int) -> dict:
    """A batch-1 cache copied to k rows (the scalar index and key positions stay shared)."""

    def tile(path, leaf):
        if _is_shared_leaf(path):
            return leaf
        return jnp.broadcast_to(leaf, (k, *leaf.shape[1:]))

    return jax.tree_util.tree_map_with_path(tile, cache)


def _is_shared_leaf(path) -> bool:
    name = getattr(path[-1], "key", None)
    return name in ("cache_index", "key_positions")


# ---------------------------------------------------------------------------------------------
# The public entry point.


def group_rows(rows: Sequence[Row]) -> list[list[int]]:
    """Row indices grouped by identical input tokens, in first-appearance order."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(tuple(int(x) for x in row["inputs"]), []).append(i)
    return list(groups.values())


def score_rows(
    model: nn.Module,
    params: Any,
    rows: Sequence[Row],
    mesh: Mesh,
    batch_size: int,
    lengths: Mapping[str, int],
    normalize: bool = False,
    shared: bool = True,
    *,
    rules: partitioning.AxisRules | None = None,
    prefix_lm: bool = True,
) -> np.ndarray:
    """Log-likelihood of each row's targets given its inputs, as float64 [len(rows)].

    Args:
      model: a `T5` or `DecoderOnly` module.
      params: its params (host or device arrays; laid out on `mesh` by their logical axes).
      rows: ``{"inputs": ids, "targets": ids}`` per row; padded / truncated to `lengths`.
      mesh: the ("data", "fsdp", "model") mesh.
      batch_size: rows per step for the per-option path; the shared path fits
        batch_size // K groups of K option slots. Rounded up to the data-parallel size.
      lengths: ``{"inputs": s, "targets": t}`` (the task feature lengths).
      normalize: divide each score by its number of target tokens (FLAN's default: False).
      shared: encode / prefill each distinct input once (False: every row on its own).
      rules: logical axis rules (default T5X 1D).
      prefix_lm: decoder-only prompts attend bidirectionally (seqio PrefixLM layout).
    """
    if not rows:
        return np.zeros((0,), np.float64)
    s, t = int(lengths["inputs"]), int(lengths["targets"])
    rules = model_rules(rules)
    params = place_params(model, params, mesh, rules)
    inputs = np.stack([pad_ids(r["inputs"], s) for r in rows])
    targets = np.stack([pad_ids(r["targets"], t) for r in rows])
    sums = np.zeros((len(rows), 2), np.float64)  # (log-prob, number of target tokens)

    if not shared:
        fn = _naive_fn(model, mesh, rules, prefix_lm)
        b = batch_unit(batch_size, mesh)
        for start in range(0, len(rows), b):
            chunk = slice(start, start + b)
            n = len(inputs[chunk])
            pad = ((0, b - n), (0, 0))
            batch_in = to_mesh(np.pad(inputs[chunk], pad), mesh)
            batch_tg = to_mesh(np.pad(targets[chunk], pad), mesh)
            sums[chunk] = np.asarray(fn(params, batch_in, batch_tg))[:n]
    else:
        groups = group_rows(rows)
        k = max(len(g) for g in groups)
        g_per_batch = batch_unit(max(batch_size // k, 1), mesh)
        fn = _shared_fn(model, mesh, rules, prefix_lm)
        for start in range(0, len(groups), g_per_batch):
            batch_groups = groups[start : start + g_per_batch]
            group_inputs = np.zeros((g_per_batch, s), np.int32)
            options = np.zeros((g_per_batch, k, t), np.int32)
            for gi, members in enumerate(batch_groups):
                group_inputs[gi] = inputs[members[0]]
                options[gi, : len(members)] = targets[members]
            out = np.asarray(fn(params, to_mesh(group_inputs, mesh), to_mesh(options, mesh)))
            for gi, members in enumerate(batch_groups):
                sums[members] = out[gi, : len(members)]
    if normalize:
        return sums[:, 0] / np.maximum(sums[:, 1], 1.0)
    return sums[:, 0]
