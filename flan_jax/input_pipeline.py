"""Training input: a seqio mixture or task, this host's shard, batched, with a resumable position.

Each host reads its own shard (``seqio.ShardInfo``) of ``global_batch / num_shards`` examples per
step. The tf.data iterator's state is saved beside each checkpoint, so a resumed run sees exactly
the batches an uninterrupted run would have seen (without replaying the data from the start);
if that state is missing or unreadable, the pipeline is rebuilt and the consumed batches
are skipped.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Mapping

import numpy as np
import seqio
import tensorflow as tf

from flan_jax import catalog, models

log = logging.getLogger("flan_jax.input_pipeline")

# seqio's feature converters by the batch layout a model family consumes
# (`models.batch_layout`).
_CONVERTERS = {
    "encoder_decoder": seqio.EncDecFeatureConverter,
    "prefix_lm": seqio.PrefixLMFeatureConverter,
}


def feature_converter(model: models.ModelConfig, pack: bool) -> seqio.FeatureConverter:
    """The seqio feature converter that makes this model's batches.

    Without seqio's length assertions: every dataset reaching it is already trimmed to the
    feature lengths (seqio's `trim_output_features`; `Truncation` reports what was cut), and
    its output is padded to them by construction. Each assertion is a traced tf.function per
    task and feature: 80 of them took 7 s of a 41 s `flan-jax eval` of a smoke checkpoint."""
    return _CONVERTERS[models.batch_layout(model)](pack=pack, apply_length_check=False)


@dataclasses.dataclass(frozen=True)
class Truncation:
    """How often a task's examples are longer than the feature lengths (cut when batched)."""

    task: str
    examples: int  # how many were looked at
    inputs: float  # share of examples whose inputs are cut
    targets: float


def truncation_report(
    name: str,
    vocabulary: seqio.Vocabulary,
    task_feature_lengths: Mapping[str, int],
    examples_per_task: int = 64,
) -> list[Truncation]:
    """The share of each member task's first training examples that the lengths would cut.

    seqio trims silently; with FLAN's long inputs a short TASK_FEATURE_LENGTHS can train on
    cut-off instructions. Reads `examples_per_task` tokenized (untrimmed) examples per task.
    """
    provider = catalog.get_task_or_mixture(name, vocabulary)
    tasks = provider.tasks if isinstance(provider, seqio.Mixture) else [provider]
    report = []
    for task in tasks:
        ds = task.get_dataset(None, split="train", shuffle=False, try_in_mem_cache=False)
        ds = ds.take(examples_per_task)
        cut = {"inputs": 0, "targets": 0}
        n = 0
        for ex in ds.as_numpy_iterator():
            n += 1
            for key in cut:
                cut[key] += int(len(ex[key]) > task_feature_lengths[key])
        if n:
            report.append(Truncation(task.name, n, cut["inputs"] / n, cut["targets"] / n))
    return report


@dataclasses.dataclass
class TrainInput:
    """An endless iterator of host-local numpy batches that knows how to save its position."""

    name: str
    task_feature_lengths: Mapping[str, int]
    host_batch_size: int
    model: models.ModelConfig
    pack: bool
    seed: int
    vocabulary: seqio.Vocabulary  # the run's; the task is registered with it (catalog)
    shard_index: int = 0
    num_shards: int = 1
    batches_consumed: int = 0

    def __post_init__(self):
        self._iterator = iter(self._dataset())

    def _dataset(self) -> tf.data.Dataset:
        # A clear error for unknown names; registers the collection (with this vocabulary) lazily.
        catalog.get_task_or_mixture(self.name, self.vocabulary)
        ds = seqio.get_dataset(
            self.name,
            task_feature_lengths=dict(self.task_feature_lengths),
            dataset_split="train",
            shuffle=True,
            num_epochs=None,  # repeat: training runs for a number of steps, not epochs
            feature_converter=feature_converter(self.model, self.pack),
            shard_info=seqio.ShardInfo(self.shard_index, self.num_shards),
            seed=self.seed,
        )
        return ds.batch(self.host_batch_size, drop_remainder=True)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batch = next(self._iterator)
        self.batches_consumed += 1
        return {k: v.numpy() for k, v in batch.items()}

    # Position -----------------------------------------------------------------------------

    # The saved iterator state is data, not code: a TF checkpoint (protos + tensor bytes) of
    # counters, RNG seeds and buffered elements (~10 MB on the demo, ~60 MB/host on FLAN 2021);
    # restoring rebuilds the iterator on the dataset `_dataset` made: no graph is read from it.

    def save(self, prefix: str) -> dict:
        """Writes the iterator state under ``prefix``; returns the JSON position record."""
        tf.train.Checkpoint(iterator=self._iterator).write(prefix)
        return {"batches_consumed": self.batches_consumed, "iterator": prefix}

    def restore(self, position: Mapping, prefix: str | None = None) -> str:
        """Continues from a saved position; returns how ("iterator state" or "skipped N").

        `prefix` is where the iterator state lies now (the run directory's own path for it, so a
        moved MODEL_DIR still resumes from it); default: the path recorded at save time.
        """
        n = int(position["batches_consumed"])
        prefix = prefix or position.get("iterator")
        self.batches_consumed = n
        if prefix and tf.io.gfile.exists(prefix + ".index"):
            try:
                tf.train.Checkpoint(iterator=self._iterator).read(prefix).assert_consumed()
                return "iterator state"
            except Exception as e:  # TF raises OpErrors, IndexError, AssertionError... for it
                # A damaged state costs time, not the run: skipping yields the same batches.
                why = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                log.warning(
                    "input state %s is unreadable (%s); skipping %d batches", prefix, why, n
                )
                self._iterator = iter(self._dataset().skip(n))
                return f"skipped {n} batches (the saved iterator state was unreadable)"
        # No saved state (e.g. written by another tool): rebuild and skip, same batches.
        self._iterator = iter(self._dataset().skip(n))
        return f"skipped {n} batches"
