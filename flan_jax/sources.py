"""Where a dataset's raw examples come from: prepared TFDS builders or a generating function.

A source is a small frozen description (``TfdsSource``, ``FunctionSource``); ``make(splits)``
turns it into a ``seqio.DataSource`` for our split names. Nothing here opens a file or a builder
until a split is first read, so registering thousands of tasks stays instant, and reading never
downloads: data that is not prepared fails with one line (``DataUnavailableError``).

The bottom of the data layer beside the templates: it knows seqio, TensorFlow and TFDS, nothing
of task specs, collections or names.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any

import seqio
import tensorflow as tf


class DataUnavailableError(ValueError):
    """A dataset's prepared TFDS data is not in the data dir (one actionable line)."""


def _data_dir_text(data_dir: str | None) -> str:
    return data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets (default)"


@dataclasses.dataclass(frozen=True)
class TfdsSource:
    """A TFDS builder, e.g. ``"glue/rte:2.0.0"``; opened lazily when a split is first read.

    Reading never downloads: a builder that is not prepared in the data dir (``data_dir``, else
    ``$TFDS_DATA_DIR``, else TFDS' default) fails with ``DataUnavailableError`` naming the builder,
    the data dir and, for manual-download builders, what to fetch (``manual_download``).
    """

    builder: str
    data_dir: str | None = None
    manual_download: str | None = None  # what to download and where, for manual-only builders

    def make(self, splits: Mapping[str, str]) -> seqio.DataSource:
        """A seqio source reading our split names from the builder's ``splits[ours]``."""
        return _TfdsDataSource(self, splits=dict(splits))

    def unavailable_message(self, data_dir: str | None = None, why: str = "") -> str:
        where = _data_dir_text(data_dir or self.data_dir)
        msg = f"TFDS dataset '{self.builder}' is not prepared in data_dir {where}"
        if why:
            msg += f" ({why})"
        if self.manual_download:
            return f"{msg}; it needs a manual download: {self.manual_download}"
        return (
            f"{msg}; prepare it with `tfds build {self.builder} --data_dir=...` on a machine "
            "with network access, or pass the data_dir that holds it"
        )

    def status(self, data_dir: str | None = None) -> str:
        """``present``, ``missing`` or ``manual`` (missing and needs a manual download).

        Only looks for the prepared builder directory; never downloads.
        """
        import tensorflow_datasets as tfds  # heavy; only `data-status` asks

        try:
            builder = tfds.builder(self.builder, data_dir=data_dir or self.data_dir)
            if builder.is_prepared():
                return "present"
        except Exception:  # unknown builder / unreadable metadata: not usable as is
            pass
        return "manual" if self.manual_download else "missing"


class _TfdsDataSource(seqio.TfdsDataSource):
    """seqio's TFDS source that reads prepared data only and fails with one clear line."""

    def __init__(self, spec: TfdsSource, splits: Mapping[str, str]):
        super().__init__(tfds_name=spec.builder, tfds_data_dir=spec.data_dir, splits=splits)
        self._spec = spec

    def get_dataset(
        self,
        split: str | None = None,
        shuffle: bool = True,
        seed: int | None = None,
        shard_info: Any = None,
        **kwargs: Any,
    ) -> tf.data.Dataset:
        import tensorflow_datasets as tfds

        split = split or "train"
        try:
            builder = self.tfds_dataset.builder
        except Exception as e:  # unknown builder or config, unreadable metadata
            raise DataUnavailableError(
                self._spec.unavailable_message(why=f"{type(e).__name__}: {e}".split("\n")[0])
            ) from None
        read_config = tfds.ReadConfig(shuffle_seed=seed, skip_prefetch=True)
        if shard_info:
            read_config.input_context = tf.distribute.InputContext(
                num_input_pipelines=shard_info.num_shards, input_pipeline_id=shard_info.index
            )
        try:
            return builder.as_dataset(
                split=self.tfds_dataset._map_split(split),
                shuffle_files=shuffle,
                read_config=read_config,
            )
        except (AssertionError, FileNotFoundError, tf.errors.NotFoundError) as e:
            raise DataUnavailableError(
                self._spec.unavailable_message(str(builder.data_dir_root))
            ) from e

    def num_input_examples(self, split: str) -> int | None:
        """Split size from the prepared metadata; None when unknown (unprepared or mocked)."""
        try:
            return super().num_input_examples(split)
        except Exception:
            return None


@dataclasses.dataclass(frozen=True)
class FunctionSource:
    """Raw examples from a function ``fn(source_split) -> tf.data.Dataset`` of known sizes."""

    fn: Callable[[str], tf.data.Dataset]
    sizes: Mapping[str, int]

    def make(self, splits: Mapping[str, str]) -> seqio.DataSource:
        """A seqio source calling ``fn(splits[ours])`` when a split is read."""

        def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
            del shuffle_files, seed  # generated data has a fixed order
            return self.fn(splits[split])

        return seqio.FunctionDataSource(
            dataset_fn,
            splits=list(splits),
            num_input_examples={ours: self.sizes[theirs] for ours, theirs in splits.items()},
        )


Source = TfdsSource | FunctionSource
