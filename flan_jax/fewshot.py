"""Few-shot variants of registered tasks: ``<task>:<k>shot``.

Each example's inputs are prefixed with up to k exemplars (inputs and target of other examples,
rendered with the same template) drawn from the task's **train** split:

    <exemplar inputs>\\n\\n<exemplar target>\\n\\n###\\n\\n ... <example inputs>

- Pool: the first ``POOL_SIZE`` train examples rendered by the zero-shot task itself (same
  template for ``:t<i>`` and ``:t<i>:rank``; for ``:mix`` each exemplar keeps the template the
  training stream gave it), built when the few-shot task is first read.
- Choice: a permutation of the pool seeded by (``seed``, fingerprint of the example's inputs), so
  it is reproducible and the same for every rank row of one example. Pool entries whose inputs
  equal the example's are skipped: an example is never its own exemplar.
- Budget: exemplars are kept in order while the inputs (exemplars + separators + the example)
  stay within ``budget`` tokens of the task's vocabulary (FLAN: 960 of 1024); the rest are
  dropped, possibly all. ``16shot`` is FLAN's "as many as fit" (up to 16).

Few-shot tasks are registered on first lookup (``catalog.get_task_or_mixture``, which resolves
the base task) or explicitly with ``register_fewshot_task(base, shots)``; nothing is registered
for them at import. This module looks nothing up by name: it is given the task objects.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import seqio
import tensorflow as tf

from flan_jax import naming

DEFAULT_BUDGET = 960
POOL_SIZE = 512
EXEMPLAR_SEPARATOR = "\n\n###\n\n"
TARGET_SEPARATOR = "\n\n"


def _fingerprint(text: tf.Tensor) -> tf.Tensor:
    return tf.strings.to_hash_bucket_fast(text, 2**62)


def _render_pool(base: seqio.Task) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, exemplar text) of the first POOL_SIZE train examples as ``base`` renders them."""
    ds = base.get_dataset(
        None, split="train", shuffle=False, try_in_mem_cache=False, use_cached=False
    ).take(POOL_SIZE)
    inputs, texts = [], []
    for ex in ds.as_numpy_iterator():
        inputs.append(ex["inputs_pretokenized"].decode())
        texts.append(
            ex["inputs_pretokenized"].decode()
            + TARGET_SEPARATOR
            + ex["targets_pretokenized"].decode()
        )
    return np.array(inputs, dtype=object), np.array(texts, dtype=object)


def fewshot_preprocessor(
    pool_fn: Callable[[], tuple[np.ndarray, np.ndarray]],
    shots: int,
    vocabulary: seqio.Vocabulary,
    budget: int = DEFAULT_BUDGET,
    seed: int = 0,
) -> Callable[[tf.data.Dataset], tf.data.Dataset]:
    """Prefixes each example's ``inputs`` with up to ``shots`` pool exemplars within budget."""

    def preprocess(ds: tf.data.Dataset) -> tf.data.Dataset:
        pool_inputs, pool_texts = pool_fn()
        if len(pool_texts) == 0:
            raise ValueError("few-shot: the train split is empty; no exemplars to draw")
        cost = [len(vocabulary.encode(t + EXEMPLAR_SEPARATOR)) for t in pool_texts]
        pool_fp = _fingerprint(tf.constant(list(pool_inputs)))
        texts = tf.constant(list(pool_texts))
        costs = tf.constant(cost, dtype=tf.int32)
        n = len(pool_texts)

        def add_shots(ex):
            own = _fingerprint(ex["inputs"])
            noise = tf.random.stateless_uniform(
                [n], seed=tf.stack([tf.constant(seed, tf.int64), own])
            )
            order = tf.argsort(noise)
            order = tf.boolean_mask(order, tf.not_equal(tf.gather(pool_fp, order), own))
            order = order[:shots]
            own_cost = tf.size(vocabulary.encode_tf(ex["inputs"]), out_type=tf.int32)
            used = tf.cumsum(tf.gather(costs, order)) + own_cost
            keep = tf.reduce_sum(tf.cast(used <= budget, tf.int32))  # cumsum: a prefix fits
            chosen = tf.gather(texts, order[:keep])
            prefix = tf.strings.reduce_join(tf.strings.join([chosen, EXEMPLAR_SEPARATOR]))
            return {
                **ex,
                "inputs": tf.strings.join([prefix, ex["inputs"]]),
                "num_shots": keep,
                "exemplar_ids": order[:keep],
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

    def pool_fn():
        return _render_pool(pool_task)

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
