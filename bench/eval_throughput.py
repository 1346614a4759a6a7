"""Evaluation throughput on CPU: rank classification (shared encoder vs per option) and
decoding (greedy / beam 4, with and without the KV cache).

    .venv/bin/python bench/eval_throughput.py            # ~2 minutes on a 2-core CPU

Tiny T5 (random params, byte vocabulary) on the demo collection: rank rows from
demo:fact_nli:t0:rank (3 options) and demo:addition:t0:rank (4 options); decoding prompts from
demo:fact_nli:t4. Each configuration is run once to compile, then timed. Prints progress, then
one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import seqio  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from flan_jax import catalog, models, partitioning, vocab  # noqa: E402
from flan_jax.evaluation import decoding, scoring  # noqa: E402
from flan_jax.models import build_model, t5_config  # noqa: E402


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def task_rows(name: str, n: int) -> list[dict]:
    ds = seqio.get_mixture_or_task(name).get_dataset(
        None, split="validation", shuffle=False, num_epochs=1
    )
    rows = []
    for ex in tfds.as_numpy(ds.take(n)):
        rows.append({"inputs": ex["inputs"].tolist(), "targets": ex["targets"].tolist()})
    return rows


def random_params(model, seed: int = 0):
    import flax.linen as nn

    boxed = models.abstract_params(model.config)
    rng = np.random.default_rng(seed)

    def draw(leaf):
        shape = leaf.value.shape
        scale = 1.0 if leaf.names[0] == "vocab" or len(shape) == 1 else 1 / np.sqrt(shape[0])
        return jnp.asarray(rng.normal(size=shape) * scale, jnp.float32)

    return jax.tree.map(draw, boxed, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))


def timed(fn, repeats: int) -> float:
    fn()  # compile
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--examples", type=int, default=48, help="examples per rank task")
    parser.add_argument("--prompts", type=int, default=16, help="prompts to decode")
    parser.add_argument("--batch", type=int, default=48, help="rows per scoring step")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    catalog.get_collection("demo", vocab.get_vocabulary("byte"))
    layout = partitioning.Layout.build(partitioning.MeshConfig())
    model = build_model(t5_config(args.size, vocab_size=259))
    # Placed once, as an evaluation does; scoring and decoding never move params.
    params = layout.place(random_params(model), models.abstract_params(model.config))
    result: dict = {"model": f"t5-{args.size}", "devices": len(jax.devices()), "rank": {}}

    for task, k in (("demo:fact_nli:t0:rank", 3), ("demo:addition:t0:rank", 4)):
        rows = task_rows(task, args.examples * k)
        lengths = {
            "inputs": max(len(r["inputs"]) for r in rows),
            "targets": max(len(r["targets"]) for r in rows),
        }
        entry = {"options": k, "examples": len(rows) // k, "lengths": lengths}
        for shared in (True, False):
            secs = timed(
                lambda shared=shared, rows=rows, lengths=lengths: scoring.score_rows(
                    model, params, rows, layout, args.batch, lengths, shared=shared
                ),
                args.repeats,
            )
            key = "shared_encoder" if shared else "per_option"
            entry[f"{key}_examples_per_s"] = round(entry["examples"] / secs, 1)
            log(f"{task}: {key} {entry[f'{key}_examples_per_s']} examples/s")
        entry["speedup"] = round(
            entry["shared_encoder_examples_per_s"] / entry["per_option_examples_per_s"], 2
        )
        result["rank"][task] = entry

    prompts = [r["inputs"] for r in task_rows("demo:fact_nli:t4", args.prompts)]
    lengths = {"inputs": max(len(p) for p in prompts), "targets": 32}
    result["decode"] = {"prompts": len(prompts), "lengths": lengths}
    for method in ("greedy", "beam"):
        for use_cache in (True, False):
            cfg = decoding.DecodeConfig(method, num_beams=4, use_cache=use_cache)
            out = {}

            def run(cfg=cfg, out=out):
                out["tokens"] = decoding.decode_rows(
                    model, params, prompts, layout, len(prompts), lengths, cfg
                )

            secs = timed(run, args.repeats)
            # Tokens produced (up to and including EOS) per second; a random model rarely stops
            # early, so this is close to prompts x max length.
            produced = sum(len(decoding.trim_at_eos(t)) for t in out["tokens"])
            key = f"{method}{'_beam4' if method == 'beam' else ''}_{'cache' if use_cache else 'no_cache'}"
            key = key.replace("beam_beam4", "beam4")
            result["decode"][f"{key}_tokens_per_s"] = round(produced / secs, 1)
            log(f"decode {key}: {result['decode'][f'{key}_tokens_per_s']} tokens/s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
