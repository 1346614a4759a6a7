"""Few-shot variants of registered tasks (``<task>:<k>shot``) and FLAN's few-shot mixtures.

Each example's inputs are prefixed with up to k exemplars (inputs and target of other examples,
rendered with the same template) drawn from the task's **whole train split**, as FLAN's
``few_shot.py`` draws them (seqio's ``FewshotDataSource`` over the shuffled train split):

    <exemplar inputs>\n\n<exemplar target>\n\n###\n\n ... <example inputs>

- Pool: every train example rendered by the zero-shot task itself (same template for ``:t<i>``
  and ``:t<i>:rank``; for ``:mix`` each exemplar keeps the template the training stream gave it),
  in an order shuffled with ``seed``, with its token cost; built once, when the few-shot task is
  first read (FLAN's train splits are capped at 30k examples).
- Choice: pool positions drawn at random from (``seed``, fingerprint of the example's inputs),
  so the choice is reproducible and the same for every rank row of one example (a permutation
  of small pools, ``2 * shots + SPARE`` draws from large ones). Positions drawn twice, and pool
  entries that are the example itself (same inputs, or same position ``idx`` in the split), are
  skipped: an example is never its own exemplar.
- Budget (FLAN's ``prune_fewshot_examples_by_length``): exemplars are kept in order while the
  inputs (exemplars + separators + the example) stay within ``budget`` tokens of the task's
  vocabulary (FLAN: 960 of 1024, keeping 64 for separators); the rest are dropped, possibly all.
  ``16shot`` is FLAN's "multi-shot": as many as fit, up to 16.

FLAN's placeholder dialog markers between exemplars (``0 ... X 1 ...``) stand in for internal
tokens and are not reproduced; the separators above are ours.

Few-shot tasks are registered on first lookup (``catalog.get_task_or_mixture``, which resolves
the base task) or explicitly with ``register_fewshot_task(base, shots)``; the few-shot mixtures
(``<c>:heldout_<clusters>:train_fewshot`` and ``...:eval_<k>shot``) likewise, through
``register_fewshot_mixture``. This module looks nothing up by name: it is given the task objects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import seqio
import tensorflow as tf

from flan_jax import naming

DEFAULT_BUDGET = 960
# FLAN's multi-shot: up to 16 exemplars within the budget (few-shot training mixtures use it).
MULTI_SHOTS = naming.FEWSHOT_TRAIN_SHOTS
# Pools up to this size are permuted per example; larger ones draw 2 * shots + SPARE positions
# (with replacement), enough to replace draws that repeat or hit the example itself.
SMALL_POOL = 1024
SPARE = 4
EXEMPLAR_SEPARATOR = "\n\n###\n\n"
TARGET_SEPARATOR = "\n\n"

Pool = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _fingerprint(text: tf.Tensor) -> tf.Tensor:
    return tf.strings.to_hash_bucket_fast(text, 2**62)


def _render_pool(base: seqio.Task, vocabulary: seqio.Vocabulary, seed: int) -> Pool:
    """(inputs fingerprint, split position, exemplar text, token cost) of every train example
    as ``base`` renders it, in an order shuffled with ``seed``."""
    ds = base.get_dataset(
        None, split="train", shuffle=False, try_in_mem_cache=False, use_cached=False
    )

    def entry(ex):
        text = tf.strings.join(
            [ex["inputs_pretokenized"], TARGET_SEPARATOR, ex["targets_pretokenized"]]
        )
        cost = tf.size(vocabulary.encode_tf(tf.strings.join([text, EXEMPLAR_SEPARATOR])))
        idx = tf.cast(ex["idx"], tf.int64) if "idx" in ex else tf.constant(-1, tf.int64)
        return _fingerprint(ex["inputs_pretokenized"]), idx, text, tf.cast(cost, tf.int32)

    fps, idxs, texts, costs = [], [], [], []
    for fp, idx, text, cost in ds.map(
        entry, num_parallel_calls=tf.data.AUTOTUNE
    ).as_numpy_iterator():
        fps.append(fp)
        idxs.append(idx)
        texts.append(text)
        costs.append(cost)
    order = np.random.default_rng(seed).permutation(len(texts))
    return (
        np.asarray(fps, dtype=np.int64)[order] if fps else np.zeros([0], np.int64),
        np.asarray(idxs, dtype=np.int64)[order] if idxs else np.zeros([0], np.int64),
        np.asarray(texts, dtype=object)[order] if texts else np.zeros([0], object),
        np.asarray(costs, dtype=np.int32)[order] if costs else np.zeros([0], np.int32),
    )


def fewshot_preprocessor(
    pool_fn: Callable[[], Pool],
    shots: int,
    vocabulary: seqio.Vocabulary,
    budget: int = DEFAULT_BUDGET,
    seed: int = 0,
) -> Callable[[tf.data.Dataset], tf.data.Dataset]:
    """Prefixes each example's ``inputs`` with up to ``shots`` pool exemplars within budget."""

    def preprocess(ds: tf.data.Dataset) -> tf.data.Dataset:
        pool_fp, pool_idx, pool_texts, pool_costs = pool_fn()
        n = len(pool_texts)
        if n == 0:
            raise ValueError("few-shot: the train split is empty; no exemplars to draw")
        fps = tf.constant(pool_fp, tf.int64)
        idxs = tf.constant(pool_idx, tf.int64)
        texts = tf.constant(list(pool_texts), tf.string)
        costs = tf.constant(pool_costs, tf.int32)
        draws = 2 * shots + SPARE

        def add_shots(ex):
            own = _fingerprint(ex["inputs"])
            own_idx = tf.cast(ex["idx"], tf.int64) if "idx" in ex else tf.constant(-2, tf.int64)
            key = tf.stack([tf.constant(seed, tf.int64), own])
            if n <= SMALL_POOL:  # a full permutation: exact, and cheap at this size
                picks = tf.argsort(tf.random.stateless_uniform([n], seed=key))
                picks = tf.cast(picks, tf.int64)
            else:  # draws with replacement; repeats dropped (first occurrences, in order)
                picks = tf.random.stateless_uniform([draws], seed=key, maxval=n, dtype=tf.int64)
                picks, _ = tf.unique(picks)
            itself = tf.logical_or(
                tf.equal(tf.gather(fps, picks), own), tf.equal(tf.gather(idxs, picks), own_idx)
            )
            order = tf.boolean_mask(picks, tf.logical_not(itself))[:shots]
            own_cost = tf.size(vocabulary.encode_tf(ex["inputs"]), out_type=tf.int32)
            used = tf.cumsum(tf.gather(costs, order)) + own_cost
            keep = tf.reduce_sum(tf.cast(used <= budget, tf.int32))  # cumsum: a prefix fits
            chosen = tf.gather(texts, order[:keep])
            prefix = tf.strings.reduce_join(tf.strings.join([chosen, EXEMPLAR_SEPARATOR]))
            return {
                **ex,
                "inputs": tf.strings.join([prefix, ex["inputs"]]),
                "num_shots": keep,
                "exemplar_ids": tf.gather(idxs, order[:keep]),
            }

        return ds.map(add_shots, num_parallel_calls=tf.data.AUTOTUNE)

    return preprocess


def fewshot_name(base_name: str, shots: int) -> str:
    """``<base>:<k>shot`` for a zero-shot task name (checked against the name grammar)."""
    parsed = naming.parse_name(base_name)
    if parsed.is_mixture or parsed.shots:
        raise naming.InvalidNameError(
            f"{base_name!r} is not a zero-shot task name; few-shot variants are built from tasks"
        )
    if shots < 1:
        raise naming.InvalidNameError(f"few-shot tasks need shots >= 1, got {shots}")
    return naming.task_name(
        parsed.collection,
        parsed.dataset,
        parsed.template,
        rank=parsed.rank,
        shots=shots,
        num_templates=parsed.num_templates,
        dedup=parsed.dedup,
    )


def register_fewshot_task(
    base: seqio.Task,
    shots: int,
    *,
    exemplars: seqio.Task | None = None,
    budget: int = DEFAULT_BUDGET,
    seed: int = 0,
) -> seqio.Task:
    """Registers ``<base>:<k>shot`` over the zero-shot task ``base`` (idempotent).

    Exemplars are the train examples as ``exemplars`` renders them (default: ``base``; a rank
    task passes its generative twin, same template, whose targets are the answers).
    """
    name = fewshot_name(base.name, shots)
    if name in seqio.TaskRegistry.names():
        return seqio.TaskRegistry.get(name)
    vocabulary = base.output_features["targets"].vocabulary
    pool_task = exemplars or base

    def pool_fn() -> Pool:
        return _render_pool(pool_task, vocabulary, seed)

    preprocessors = list(base.preprocessors)
    # Insert before tokenization (the last two preprocessors: tokenize, append EOS).
    insert_at = len(preprocessors) - 2
    preprocessors.insert(insert_at, fewshot_preprocessor(pool_fn, shots, vocabulary, budget, seed))
    return seqio.TaskRegistry.add(
        name,
        source=base.source,
        preprocessors=preprocessors,
        output_features=base.output_features,
        postprocess_fn=base.postprocessor,
        metric_fns=list(base.metric_fns),
    )


def register_fewshot_mixture(
    name: str,
    tasks: Sequence[seqio.Task],
    rate: Callable[[seqio.Task], float],
) -> seqio.Mixture:
    """Registers a mixture of few-shot tasks (idempotent); ``rate`` weighs each member."""
    if name in seqio.MixtureRegistry.names():
        return seqio.MixtureRegistry.get(name)
    return seqio.MixtureRegistry.add(name, [(t.name, rate) for t in tasks])
