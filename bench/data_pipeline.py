"""The training input pipeline at FLAN scale, against what a T5 1.1 XL step consumes.

    .venv/bin/python bench/data_pipeline.py                  # ~1-2 minutes on a 2-core CPU
    .venv/bin/python bench/data_pipeline.py --vocab PATH/TO/sentencepiece.model

Builds `flan2021:heldout_nli:train` (every FLAN 2021 cluster but NLI, 55 tasks) with the trainer's
own `input_pipeline.TrainInput`: the paper's lengths (inputs 1024 / targets 256), packed, T5's
encoder-decoder feature converter, one host's share of the batch. The TFDS data are mocked: each
builder serves hand-written examples in its exact feature structure (`tests/flan2021_raw.py`),
made distinct per index. They are shorter than real FLAN examples, so a packed row holds more
of them than it would on real data: per-example work (templates, tokenizing, packing) weighs
more here, and rows/s is a low estimate.

Reports rows/s, examples/s and non-padding tokens/s of this host, next to the rate one TPU v4
host (4 chips, 275 TFLOP/s bf16 each) consumes packed rows at 50% MFU training T5 1.1 XL
(t5.md's FLOPs formula, `models.train_flops_per_example`), and their ratio. Prints progress on
stderr, then one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from unittest import mock

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # TensorFlow stays on the CPU
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import seqio  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import flan2021_raw  # noqa: E402

from flan_jax import input_pipeline, models, vocab  # noqa: E402

MIXTURE = "flan2021:heldout_nli:train"
LENGTHS = {"inputs": 1024, "targets": 256}  # the FLAN paper's
TPU_V4_CHIPS_PER_HOST = 4
TPU_V4_PEAK_FLOPS = 275e12  # bf16 per chip
MFU = 0.5


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@contextlib.contextmanager
def mocked_flan2021(examples_per_split: int) -> Iterator[None]:
    """Every FLAN 2021 builder serves `examples_per_split` distinct schema-true examples.

    Distinct per index through a suffix on every string leaf (answers and their choices get the
    same one, so they still match); no '#', which gigaword's filter drops. Mocked builders have
    no split metadata, which two things read: the mixture's rates (examples-proportional), here
    from the collection's official train sizes as on real data, and seqio's shard count before
    it shards by host, here one shard (this host reads all of it, as with one host).
    """
    sizes = importlib.import_module("flan_jax.tasks.flan2021").TRAIN_SIZES

    def num_input_examples(self, split):
        return sizes.get(self.name.split(":")[1], examples_per_split)

    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False, **kw):
        raw = flan2021_raw.RAW[flan2021_raw.builder_key(self)]
        base = str(split).split("[")[0]
        rows = [
            flan2021_raw.as_tensors(self, flan2021_raw._vary(copy.deepcopy(raw), f" {base}{i}"))
            for i in range(examples_per_split)
        ]
        return tf.data.Dataset.from_tensor_slices(
            tf.nest.map_structure(lambda *xs: tf.stack(xs), *rows)
        )

    with (
        tfds.testing.mock_data(as_dataset_fn=as_dataset),
        mock.patch.object(seqio.TfdsDataSource, "list_shards", lambda self, split: ["mock"]),
        mock.patch.object(seqio.Task, "num_input_examples", num_input_examples),
    ):
        yield


def consumption(model: models.ModelConfig) -> dict:
    """Packed rows/s and token slots/s one TPU v4 host eats training `model` at 50% MFU."""
    flops_per_row = models.train_flops_per_example(model, LENGTHS)
    rows_per_s = TPU_V4_CHIPS_PER_HOST * TPU_V4_PEAK_FLOPS * MFU / flops_per_row
    return {
        "model": "t5-1.1 xl",
        "host": f"TPU v4, {TPU_V4_CHIPS_PER_HOST} chips x {TPU_V4_PEAK_FLOPS / 1e12:.0f} TFLOP/s",
        "mfu": MFU,
        "train_flops_per_row": flops_per_row,
        "rows_per_s": round(rows_per_s, 2),
        "token_slots_per_s": round(rows_per_s * sum(LENGTHS.values()), 1),
    }


def measure(args: argparse.Namespace, model: models.ModelConfig) -> dict:
    vocabulary = vocab.get_vocabulary(args.vocab)
    start = time.perf_counter()
    with mocked_flan2021(args.examples):
        data = input_pipeline.TrainInput(
            MIXTURE,
            LENGTHS,
            host_batch_size=args.batch,
            model=model,
            pack=True,
            seed=0,
            vocabulary=vocabulary,
        )
        first = next(data)  # builds the graph, fills the shuffle buffers
        ready = time.perf_counter() - start
        log(f"pipeline ready (first batch) after {ready:.1f}s; timing {args.batches} batches")
        rows = examples = tokens = 0
        t = time.perf_counter()
        for i in range(args.batches):
            if i == args.batches // 2:
                half = (time.perf_counter(), rows)
            batch = next(data)
            rows += batch["encoder_input_tokens"].shape[0]
            # Segment ids number the packed examples of a row 1, 2, ...: the max is their count.
            examples += int(batch["encoder_segment_ids"].max(axis=1).sum())
            tokens += int(np.count_nonzero(batch["encoder_input_tokens"]))
            tokens += int(np.count_nonzero(batch["decoder_target_tokens"]))
        seconds = time.perf_counter() - t
        # Buffers filled while the first batch waited serve the first timed batches: the second
        # half's rate shows whether the pipeline keeps that pace on its own.
        second_half = (rows - half[1]) / (time.perf_counter() - half[0])
    fill = {
        k: round(float(np.count_nonzero(first[k]) / first[k].size), 3)
        for k in ("encoder_input_tokens", "decoder_target_tokens")
    }
    return {
        "mixture": MIXTURE,
        "lengths": LENGTHS,
        "packed": True,
        "vocabulary": vocab.describe(vocabulary),
        "host_batch_rows": args.batch,
        "first_batch_s": round(ready, 1),
        "timed_batches": args.batches,
        "rows_per_s": round(rows / seconds, 2),
        "rows_per_s_second_half": round(second_half, 2),
        "examples_per_s": round(examples / seconds, 1),
        "tokens_per_s": round(tokens / seconds, 1),
        "examples_per_row": round(examples / rows, 1),
        "fill": fill,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", default="byte", help="byte, or a SentencePiece .model path")
    parser.add_argument("--batch", type=int, default=32, help="packed rows per host batch")
    parser.add_argument("--batches", type=int, default=40, help="timed batches")
    parser.add_argument("--examples", type=int, default=64, help="mocked examples per split")
    args = parser.parse_args()

    model = models.t5_config("xl")
    eats = consumption(model)
    log(f"T5 1.1 XL on one TPU v4 host at 50% MFU eats {eats['rows_per_s']} packed rows/s")
    made = measure(args, model)
    ratio = made["rows_per_s"] / eats["rows_per_s"]
    log(f"pipeline: {made['rows_per_s']} rows/s, {made['examples_per_s']} examples/s: {ratio:.2f}x")
    result = {
        "bench": "data_pipeline",
        "machine": f"{os.cpu_count()}-core {platform.machine()} CPU",
        "pipeline": made,
        "consumption": eats,
        "pipeline_over_consumption": round(ratio, 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
