"""Rank-classification scoring: the log-likelihood of each target given its input.

A *row* is one (input, option) pair as token ids: ``{"inputs": [...], "targets": [...]}`` (EOS
included, as seqio produces them). ``score_rows`` returns, per row, the summed log-probability of
the target tokens (optionally divided by their number), jitted and sharded over the job's layout
with the batch split over ("data", "fsdp").

Two paths that give the same numbers (tested to 1e-5); the model family supplies the compute
(`Family.row_scorer` / `Family.option_scorer`), this module batches and groups the rows:

* ``shared=True``: rows with identical inputs form a group (one example and its options); each
  group's input is computed once (an encoder-decoder encodes it once, a decoder-only LM prefills
  it into a KV cache) and every option is scored against it. Batches hold G groups x K option
  slots (K = the largest group).
* ``shared=False``: every row runs the full model on its own (the reference, and the baseline
  of ``bench/eval_throughput.py``).

Batches come from `batching`: sorted and bucketed by length (scores unchanged, order
restored), each process feeding its share of every batch, the scores gathered back to all.
Params must already be laid out on the layout (`Layout.place`, or restored onto
`Layout.abstract_on_mesh`): nothing here moves them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from flan_jax import models, partitioning
from flan_jax.evaluation import batching

Row = Mapping[str, Sequence[int]]


def jit_on_layout(model_fn: models.ModelFn, layout: partitioning.Layout) -> Callable[..., Any]:
    """`jit(model_fn.fn)`, traced with the layout's mesh and rules current (without the batch
    rule when the function vmaps the model over examples)."""
    traced_under = layout.without_batch() if model_fn.vmaps_examples else layout
    return traced_under.on_mesh(jax.jit(model_fn.fn))


def pad_ids(ids: Sequence[int], length: int) -> np.ndarray:
    """Token ids truncated / zero-padded to `length`."""
    out = np.zeros((length,), np.int32)
    ids = np.asarray(ids, np.int32)[:length]
    out[: len(ids)] = ids
    return out


# One compile per (model, layout, path); jit caches the shapes.
@functools.lru_cache(maxsize=32)
def _row_fn(model: nn.Module, layout: partitioning.Layout, prefix_lm: bool) -> Callable:
    """jit(params, inputs [b, s], targets [b, t]) -> [b, 2] (log-prob, length)."""
    family = models.family_of(model.config)
    return jit_on_layout(family.row_scorer(model, prefix_lm), layout)


@functools.lru_cache(maxsize=32)
def _option_fn(model: nn.Module, layout: partitioning.Layout, prefix_lm: bool) -> Callable:
    """jit(params, inputs [G, s], options [G, K, t]) -> [G, K, 2]; each input computed once."""
    family = models.family_of(model.config)
    return jit_on_layout(family.option_scorer(model, prefix_lm), layout)


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
    layout: partitioning.Layout,
    batch_size: int,
    lengths: Mapping[str, int],
    normalize: bool = False,
    shared: bool = True,
    *,
    prefix_lm: bool = True,
    bucket: bool = True,
) -> np.ndarray:
    """Log-likelihood of each row's targets given its inputs, as float64 [len(rows)].

    Every process passes the same rows and gets every score back; each feeds only its share of
    every batch to its devices (`batching`), so this runs unchanged on one host or a pod slice.

    Args:
      model: a module built by `models.build_model`.
      params: its params, laid out on `layout` by their logical axes.
      rows: ``{"inputs": ids, "targets": ids}`` per row; truncated to `lengths`.
      layout: the job's mesh and logical-axis rules.
      batch_size: rows per step for the per-option path; the shared path fits
        batch_size // K groups of K option slots. Rounded up to the data-parallel size.
      lengths: ``{"inputs": s, "targets": t}`` (the task feature lengths).
      normalize: divide each score by its number of target tokens (FLAN's default: False).
      shared: compute each distinct input once (False: every row on its own).
      prefix_lm: decoder-only prompts attend bidirectionally (seqio PrefixLM layout).
      bucket: sort rows by length and pad each batch to its own length bucket (the same
        scores, less padding); False pads every batch to `lengths`.
    """
    if not rows:
        return np.zeros((0,), np.float64)
    caps = (int(lengths["inputs"]), int(lengths["targets"]))
    inputs = [np.asarray(r["inputs"], np.int32)[: caps[0]] for r in rows]
    targets = [np.asarray(r["targets"], np.int32)[: caps[1]] for r in rows]

    if not shared:
        fn = _row_fn(model, layout, prefix_lm)
        sizes = [(len(i), len(t)) for i, t in zip(inputs, targets)]

        def build_rows(items: np.ndarray, lens: tuple[int, ...]) -> list[np.ndarray]:
            batch_in = np.zeros((len(items), lens[0]), np.int32)
            batch_tg = np.zeros((len(items), lens[1]), np.int32)
            for slot, item in enumerate(items):
                if item >= 0:
                    batch_in[slot] = pad_ids(inputs[item], lens[0])
                    batch_tg[slot] = pad_ids(targets[item], lens[1])
            return [batch_in, batch_tg]

        batches = batching.plan(sizes, caps, layout.batch_unit(batch_size), bucket)
        call = lambda ids, x, y: fn(params, x, y)  # noqa: E731
        sums = batching.run(call, batches, layout, build_rows, len(rows)).astype(np.float64)
    else:
        groups = group_rows(rows)
        k = max(len(g) for g in groups)
        fn = _option_fn(model, layout, prefix_lm)
        sizes = [(len(inputs[g[0]]), max(len(targets[m]) for m in g)) for g in groups]

        def build_groups(items: np.ndarray, lens: tuple[int, ...]) -> list[np.ndarray]:
            group_inputs = np.zeros((len(items), lens[0]), np.int32)
            options = np.zeros((len(items), k, lens[1]), np.int32)
            for slot, item in enumerate(items):
                if item >= 0:
                    members = groups[item]
                    group_inputs[slot] = pad_ids(inputs[members[0]], lens[0])
                    for j, m in enumerate(members):
                        options[slot, j] = pad_ids(targets[m], lens[1])
            return [group_inputs, options]

        g_per_batch = layout.batch_unit(max(batch_size // k, 1))
        batches = batching.plan(sizes, caps, g_per_batch, bucket)
        call = lambda ids, x, y: fn(params, x, y)  # noqa: E731
        per_group = batching.run(call, batches, layout, build_groups, len(groups))
        sums = np.zeros((len(rows), 2), np.float64)
        for gi, members in enumerate(groups):
            sums[members] = per_group[gi, : len(members)]
    if normalize:
        return sums[:, 0] / np.maximum(sums[:, 1], 1.0)
    return sums[:, 0]
