"""Evaluation throughput on CPU: rank classification (shared encoder vs per option), length
bucketing on a mixed-length eval mixture, and decoding against Hugging Face transformers.

    .venv/bin/python bench/eval_throughput.py     # ~1.5 min on a 2-core CPU (under 4 when busy)

Tiny T5 (random params, byte vocabulary), one CPU device, on the demo collection:

* rank: rows from demo:fact_nli:t0:rank (3 options) and demo:addition:t0:rank (4 options),
  scored with the shared encoder and per option;
* bucketing: a mixed-length eval mixture (template t0 of all 8 demo datasets, examples
  interleaved, inputs of ~30 to ~180 tokens, targets of 2 to 27) at the demo's task feature
  lengths (192 / 32), rank-scored (shared encoder) and greedy-decoded with length bucketing on
  and off: examples/s both ways and the fraction of the token positions fed to the model that
  are padding;
* decode: prompts of demo:fact_nli:t4 decoded greedily and with beam 4 to 32 and 128 target
  tokens: ours (KV cache; without it at 32 tokens) against Hugging Face transformers'
  `generate` (PyTorch, CPU) on the same weights (ours exported through
  `flan_jax.conversion.export_hf` and loaded as `T5ForConditionalGeneration`). Both search
  without a length penalty (ours alpha=0, HF length_penalty=0) so they look for the same
  sequences; `same_tokens` is the fraction of prompts with identical outputs up to EOS (greedy
  must be 1.0). Beam may differ on a few prompts: a random model's search can pick the pad id 0
  mid-sequence, which the two treat differently, or two hypotheses can tie within rounding.
  Speed: prompts/s (`ours_over_hf` is their ratio) and tokens/s (generated, up to EOS).

Each configuration runs once to compile (ours) or warm up (PyTorch), then is timed. Prints
progress, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import seqio  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from flan_jax import catalog, conversion, models, partitioning, vocab  # noqa: E402
from flan_jax.evaluation import batching, decoding, scoring  # noqa: E402
from flan_jax.models import build_model, t5_config  # noqa: E402

DEMO_DATASETS = (
    "fact_nli",
    "order_nli",
    "product_reviews",
    "movie_reviews",
    "addition",
    "compare",
    "reverse_word",
    "first_alphabetical",
)
MIXTURE_LENGTHS = {"inputs": 192, "targets": 32}  # demo_smoke.gin's TASK_FEATURE_LENGTHS


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


def interleave(parts: list[list]) -> list:
    """Round-robin over the parts, so neighbours come from different tasks (as a mixture's
    examples do)."""
    out = []
    for i in range(max(len(p) for p in parts)):
        out.extend(p[i] for p in parts if i < len(p))
    return out


def padding_fraction(
    batches: list[batching.Batch], real: list[int], weights: tuple[int, ...]
) -> float:
    """Padding / all token positions fed to the model over a plan: each slot of a batch holds
    sum(weights x padded lengths) positions (weights: e.g. one input and K option targets);
    `real` counts each item's own tokens."""
    fed = sum(len(b.items) * int(np.dot(weights, b.lengths)) for b in batches)
    used = sum(real[i] for b in batches for i in b.items if i >= 0)
    return 1.0 - used / fed


def bench_bucketing(
    model: Any, params: Any, layout: partitioning.Layout, args: argparse.Namespace
) -> dict:
    """The mixed-length eval mixture, bucketed and not: rank scoring and greedy decoding."""
    caps = (MIXTURE_LENGTHS["inputs"], MIXTURE_LENGTHS["targets"])
    # Rank rows grouped by example (the options of one input stay together), then interleaved.
    per_task = []
    for d in DEMO_DATASETS:
        rows = task_rows(f"demo:{d}:t0:rank", 4 * args.mixture_examples)
        groups = scoring.group_rows(rows)[: args.mixture_examples]
        per_task.append([[rows[i] for i in g] for g in groups])
    rows = [r for group in interleave(per_task) for r in group]
    groups = scoring.group_rows(rows)
    k = max(len(g) for g in groups)
    sizes = [
        (min(len(rows[g[0]]["inputs"]), caps[0]), max(len(rows[m]["targets"]) for m in g))
        for g in groups
    ]
    real = [
        min(len(rows[g[0]]["inputs"]), caps[0])
        + sum(min(len(rows[m]["targets"]), caps[1]) for m in g)
        for g in groups
    ]
    prompts = interleave(
        [
            [r["inputs"] for r in task_rows(f"demo:{d}:t0", args.mixture_prompts)]
            for d in DEMO_DATASETS
        ]
    )
    out: dict = {
        "lengths": MIXTURE_LENGTHS,
        "rank": {"examples": len(groups), "rows": len(rows), "max_options": k},
        "decode": {"prompts": len(prompts), "targets": MIXTURE_LENGTHS["targets"]},
    }
    group_batch = layout.batch_unit(max(args.batch // k, 1))
    decode_lengths = dict(MIXTURE_LENGTHS)
    prompt_sizes = [(min(len(p), caps[0]),) for p in prompts]
    for bucket in (True, False):
        key = "bucketed" if bucket else "unbucketed"
        plan = batching.plan(sizes, caps, group_batch, bucket)
        out["rank"][f"{key}_padding_fraction"] = round(padding_fraction(plan, real, (1, k)), 3)
        out["rank"][f"{key}_shapes"] = len({b.lengths for b in plan})
        secs = timed(
            lambda bucket=bucket: scoring.score_rows(
                model, params, rows, layout, args.batch, MIXTURE_LENGTHS, bucket=bucket
            ),
            args.repeats + 1,
        )
        out["rank"][f"{key}_examples_per_s"] = round(len(groups) / secs, 1)
        log(
            f"mixture rank {key}: {out['rank'][f'{key}_examples_per_s']} examples/s, "
            f"padding {out['rank'][f'{key}_padding_fraction']}"
        )

        plan = batching.plan(
            prompt_sizes, caps[:1], layout.batch_unit(args.mixture_decode_batch), bucket
        )
        lens = [s[0] for s in prompt_sizes]
        out["decode"][f"{key}_input_padding_fraction"] = round(
            padding_fraction(plan, lens, (1,)), 3
        )
        secs = timed(
            lambda bucket=bucket: decoding.decode_rows(
                model,
                params,
                prompts,
                layout,
                args.mixture_decode_batch,
                decode_lengths,
                decoding.GREEDY,
                bucket=bucket,
            ),
            args.repeats + 1,
        )
        out["decode"][f"{key}_examples_per_s"] = round(len(prompts) / secs, 1)
        log(f"mixture greedy decode {key}: {out['decode'][f'{key}_examples_per_s']} examples/s")
    for part in ("rank", "decode"):
        entry = out[part]
        entry["speedup"] = round(
            entry["bucketed_examples_per_s"] / entry["unbucketed_examples_per_s"], 2
        )
    return out


def hf_model(model: Any, params: Any, tmp: str) -> Any:
    """Our params as a transformers T5ForConditionalGeneration (through export_hf)."""
    import torch
    import transformers

    host = jax.tree.map(np.asarray, jax.device_get(params))
    ckpt = conversion.save_imported(
        os.path.join(tmp, "ours"),
        conversion.ImportedModel(host, model.config, "byte", {"format": "bench"}),
    )
    exported = conversion.export_hf(ckpt, os.path.join(tmp, "hf"))
    hf = transformers.T5ForConditionalGeneration.from_pretrained(exported, dtype=torch.float32)
    return hf.eval()


def hf_generate(hf: Any, prompts: list[list[int]], max_len: int, beams: int) -> np.ndarray:
    """HF generate, one batch of all prompts: tokens [prompts, max_len]."""
    import torch

    s = max(len(p) for p in prompts)
    ids = torch.zeros((len(prompts), s), dtype=torch.long)
    mask = torch.zeros((len(prompts), s), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, : len(p)] = torch.tensor(p)
        mask[i, : len(p)] = 1
    with torch.inference_mode():
        out = hf.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_len,
            min_new_tokens=0,
            do_sample=False,
            num_beams=beams,
            # Plain summed log-probability, as ours with alpha=0 (beam search only).
            **({"length_penalty": 0.0, "early_stopping": False} if beams > 1 else {}),
        )
    tokens = np.zeros((len(prompts), max_len), np.int32)
    gen = out[:, 1:].numpy()  # drop the decoder start token
    tokens[:, : gen.shape[1]] = gen
    return tokens


def produced(tokens: np.ndarray) -> int:
    """Tokens generated, up to and including each row's EOS."""
    return sum(len(decoding.trim_at_eos(t)) for t in tokens)


def bench_decode(
    model: Any, params: Any, layout: partitioning.Layout, args: argparse.Namespace
) -> dict:
    """Greedy and beam 4, ours (cache / no cache) vs HF generate, at 32 and 128 tokens."""
    import torch

    prompts = [r["inputs"] for r in task_rows("demo:fact_nli:t4", args.prompts)]
    s = max(len(p) for p in prompts)
    result: dict = {
        "prompts": len(prompts),
        "input_length": s,
        "torch_threads": torch.get_num_threads(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        hf = hf_model(model, params, tmp)
    for max_len in args.decode_lengths:
        lengths = {"inputs": s, "targets": max_len}
        entry: dict = {}
        for method in ("greedy", "beam"):
            name = "greedy" if method == "greedy" else f"beam{args.beams}"
            row: dict = {}
            caches = (True, False) if max_len == min(args.decode_lengths) else (True,)
            ours = None
            for use_cache in caches:
                cfg = decoding.DecodeConfig(
                    method, num_beams=args.beams, alpha=0.0, use_cache=use_cache
                )
                out = {}

                def run(cfg=cfg, out=out, lengths=lengths):
                    out["tokens"] = decoding.decode_rows(
                        model, params, prompts, layout, len(prompts), lengths, cfg
                    )

                secs = timed(run, args.repeats)
                key = "ours_cache" if use_cache else "ours_no_cache"
                row[f"{key}_tokens_per_s"] = round(produced(out["tokens"]) / secs, 1)
                row[f"{key}_prompts_per_s"] = round(len(prompts) / secs, 1)
                if use_cache:
                    ours = out["tokens"]
            hf_out = {}

            def run_hf(hf_out=hf_out, max_len=max_len, beams=args.beams if method == "beam" else 1):
                hf_out["tokens"] = hf_generate(hf, prompts, max_len, beams)

            secs = timed(run_hf, 1)  # the first call warms PyTorch up for these shapes
            theirs = hf_out["tokens"]
            row["hf_tokens_per_s"] = round(produced(theirs) / secs, 1)
            row["hf_prompts_per_s"] = round(len(prompts) / secs, 1)
            # Same prompts, same search: the ratio of wall times (beam outputs may differ in
            # length, so tokens/s alone would not compare the same work).
            row["ours_over_hf"] = round(
                row["ours_cache_prompts_per_s"] / row["hf_prompts_per_s"], 2
            )
            row["mean_length"] = {
                "ours": round(produced(ours) / len(prompts), 1),
                "hf": round(produced(theirs) / len(prompts), 1),
            }
            # Up to EOS: after it transformers' beam search pads with EOS, ours with 0.
            same = [
                decoding.trim_at_eos(a) == decoding.trim_at_eos(b) for a, b in zip(ours, theirs)
            ]
            row["same_tokens"] = round(float(np.mean(same)), 3)
            entry[name] = row
            log(f"decode {name} -> {max_len}: {row}")
        result[str(max_len)] = entry
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--examples", type=int, default=48, help="examples per rank task")
    parser.add_argument("--mixture_examples", type=int, default=24, help="per dataset")
    parser.add_argument("--mixture_prompts", type=int, default=8, help="per dataset")
    parser.add_argument("--mixture_decode_batch", type=int, default=16)
    parser.add_argument("--prompts", type=int, default=16, help="prompts to decode")
    parser.add_argument("--decode_lengths", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--beams", type=int, default=4)
    parser.add_argument("--batch", type=int, default=48, help="rows per scoring step")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    start = time.perf_counter()

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

    result["bucketing"] = bench_bucketing(model, params, layout, args)
    result["decode"] = bench_decode(model, params, layout, args)
    result["seconds"] = round(time.perf_counter() - start, 1)
    greedy_same = [
        e["greedy"]["same_tokens"] for e in result["decode"].values() if isinstance(e, dict)
    ]
    if any(x < 1.0 for x in greedy_same):
        log(f"WARNING: greedy tokens differ from transformers' on some prompts: {greedy_same}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
