"""Eval batches over every process: a shared plan, each process feeds its share, outputs gathered.

Scoring and decoding see a list of *items* (a rank row, a group of rows sharing one input, a
prompt), each with its token lengths. Every process holds the same list (seqio's Evaluator reads
the whole eval split on every host, as in T5X) and computes the same plan from it, so all
processes run the same jitted calls on the same shapes without talking to each other:

* ``plan`` cuts the items into global batches of the layout's batch size. With ``bucket=True``
  the items are first sorted by length and each batch is padded only to the next power of two
  of its longest item (capped at the feature length), so padding does not dominate when short
  and long examples are mixed; a handful of shapes, so a handful of compiles.
* ``run`` gives each process its slice of every batch (by its input shard,
  `partitioning.host_shard_info`: hosts holding the same batch slices feed the same items),
  assembles global arrays from the process-local rows (`partitioning.host_local_to_global`),
  and gathers the outputs back to every process (`multihost_utils.process_allgather`) together
  with the item ids that travelled beside them, so each output lands on its item whatever the
  mesh's device order: the caller gets the outputs in the original item order.

Per-item results do not depend on the plan (no computation mixes examples), so a run on one
process, on several, bucketed or not gives the same numbers up to float summation order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

from flan_jax import partitioning

MIN_BUCKET = 8  # the shortest padded length of a bucket
_IN_FLIGHT = 8  # batches dispatched before their outputs are gathered (bounds device memory)


@dataclasses.dataclass(frozen=True)
class Batch:
    """One global batch: item indices (-1 for an empty slot) and padded lengths."""

    items: np.ndarray  # [global batch] int32
    lengths: tuple[int, ...]


def bucket_length(n: int, cap: int) -> int:
    """The smallest power of two >= n (at least MIN_BUCKET), capped at `cap`."""
    size = MIN_BUCKET
    while size < n:
        size *= 2
    return min(size, cap)


def plan(
    sizes: Sequence[Sequence[int]], caps: Sequence[int], global_batch: int, bucket: bool = True
) -> list[Batch]:
    """Global batches over items of the given lengths (one tuple per item, one entry per
    padded dimension, e.g. (input length, target length)).

    ``bucket=False`` keeps the item order and pads every batch to `caps`; ``bucket=True`` sorts
    by length (stable: ties keep their order) and pads each batch to its own bucket.
    """
    n = len(sizes)
    table = np.minimum(np.asarray(sizes, np.int64).reshape(n, len(caps)), np.asarray(caps))
    if bucket and n:
        order = np.lexsort(table.T[::-1])  # by the first length, then the next ones
    else:
        order = np.arange(n)
    batches = []
    for start in range(0, n, global_batch):
        chunk = order[start : start + global_batch]
        items = np.full((global_batch,), -1, np.int32)
        items[: len(chunk)] = chunk
        if bucket:
            longest = table[chunk].max(axis=0)
            lengths = tuple(bucket_length(int(m), int(c)) for m, c in zip(longest, caps))
        else:
            lengths = tuple(int(c) for c in caps)
        batches.append(Batch(items, lengths))
    return batches


def local_items(batch: Batch, layout: partitioning.Layout) -> np.ndarray:
    """This process's slice of a global batch (the items its input shard feeds)."""
    shard, num_shards = partitioning.host_shard_info(layout.mesh)
    per_shard = len(batch.items) // num_shards
    return batch.items[shard * per_shard : (shard + 1) * per_shard]


def run(
    fn: Callable[..., Any],
    batches: Sequence[Batch],
    layout: partitioning.Layout,
    build: Callable[[np.ndarray, tuple[int, ...]], Sequence[np.ndarray]],
    num_items: int,
) -> np.ndarray:
    """Outputs of ``fn(ids, *arrays)`` per item, in item order, on every process.

    `build(items, lengths)` returns the arrays of this process's items (leading dim
    len(items); an item of -1 is an empty slot to fill with padding), padded to `lengths`.
    `fn` gets the global arrays: first the item ids ([global batch] int32, -1 for empty
    slots; decoding seeds its sampler with them), then the built arrays; it returns one array
    with the global batch as its leading dim. The result has that array's trailing shape.
    """
    out: np.ndarray | None = None
    pending: list[tuple[jax.Array, jax.Array]] = []

    def drain() -> None:
        nonlocal out
        gathered = multihost_utils.process_allgather(pending, tiled=True)
        pending.clear()
        for ids, values in gathered:
            ids, values = np.asarray(ids), np.asarray(values)
            if out is None:
                out = np.zeros((num_items, *values.shape[1:]), values.dtype)
            keep = ids >= 0
            out[ids[keep]] = values[keep]

    for batch in batches:
        mine = local_items(batch, layout)
        arrays = build(mine, batch.lengths)
        host = {"ids": mine, **{f"x{i}": a for i, a in enumerate(arrays)}}
        glob = partitioning.host_local_to_global(host, layout.mesh)
        values = fn(glob["ids"], *(glob[f"x{i}"] for i in range(len(arrays))))
        pending.append((glob["ids"], values))
        if len(pending) >= _IN_FLIGHT:
            drain()
    if pending:
        drain()
    if out is None:
        raise ValueError("batching.run got no batches; call it with at least one item")
    return out
