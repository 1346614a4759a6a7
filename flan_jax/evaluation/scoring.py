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
) -> np.ndarray:
    """Log-likelihood of each row's targets given its inputs, as float64 [len(rows)].

    Args:
      model: a module built by `models.build_model`.
      params: its params, laid out on `layout` by their logical axes.
      rows: ``{"inputs": ids, "targets": ids}`` per row; padded / truncated to `lengths`.
      layout: the job's mesh and logical-axis rules.
      batch_size: rows per step for the per-option path; the shared path fits
        batch_size // K groups of K option slots. Rounded up to the data-parallel size.
      lengths: ``{"inputs": s, "targets": t}`` (the task feature lengths).
      normalize: divide each score by its number of target tokens (FLAN's default: False).
      shared: compute each distinct input once (False: every row on its own).
      prefix_lm: decoder-only prompts attend bidirectionally (seqio PrefixLM layout).
    """
    if not rows:
        return np.zeros((0,), np.float64)
    s, t = int(lengths["inputs"]), int(lengths["targets"])
    inputs = np.stack([pad_ids(r["inputs"], s) for r in rows])
    targets = np.stack([pad_ids(r["targets"], t) for r in rows])
    sums = np.zeros((len(rows), 2), np.float64)  # (log-prob, number of target tokens)

    if not shared:
        fn = _row_fn(model, layout, prefix_lm)
        b = layout.batch_unit(batch_size)
        for start in range(0, len(rows), b):
            chunk = slice(start, start + b)
            n = len(inputs[chunk])
            pad = ((0, b - n), (0, 0))
            batch_in = layout.to_mesh(np.pad(inputs[chunk], pad))
            batch_tg = layout.to_mesh(np.pad(targets[chunk], pad))
            sums[chunk] = np.asarray(fn(params, batch_in, batch_tg))[:n]
    else:
        groups = group_rows(rows)
        k = max(len(g) for g in groups)
        g_per_batch = layout.batch_unit(max(batch_size // k, 1))
        fn = _option_fn(model, layout, prefix_lm)
        for start in range(0, len(groups), g_per_batch):
            batch_groups = groups[start : start + g_per_batch]
            group_inputs = np.zeros((g_per_batch, s), np.int32)
            options = np.zeros((g_per_batch, k, t), np.int32)
            for gi, members in enumerate(batch_groups):
                group_inputs[gi] = inputs[members[0]]
                options[gi, : len(members)] = targets[members]
            out = np.asarray(fn(params, layout.to_mesh(group_inputs), layout.to_mesh(options)))
            for gi, members in enumerate(batch_groups):
                sums[members] = out[gi, : len(members)]
    if normalize:
        return sums[:, 0] / np.maximum(sums[:, 1], 1.0)
    return sums[:, 0]
