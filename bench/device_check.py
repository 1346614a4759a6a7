"""The GPU check: our train step and decoding against PyTorch/transformers on the same GPU.

    bench/device_check.sh                  # on a GPU machine: ~3-6 minutes, one JSON line
    bench/device_check.sh --dry-run        # CPU, tiny shapes: the same code in well under a minute

Three rows, each ours next to the PyTorch reference on the same device, one device each side:

* t5_train: T5 1.1 base, bf16 activations over f32 params, Adafactor, inputs 512 / targets 114
  (`train_throughput.py`'s step and its HF `T5ForConditionalGeneration` + Adafactor reference);
  tokens/s and MFU against the chip's bf16 peak.
* llama_train: the `smollm2-135m` Llama preset, bf16, AdamW, 192 + 64 tokens per row
  (`llm_throughput.py`'s step and its HF `LlamaForCausalLM` reference).
* t5_decode: T5 1.1 base bf16, random weights, greedy with the KV cache, every row decoded to
  the full length (no EOS stop on either side), against `transformers`' `generate`.

Only the JAX stack is imported (models, partitioning, optimizer, train step, decoding): no
TensorFlow, seqio or gin, which GPU machines without network lack (`tests/test_bench.py`
checks the import graph). A row that fails is reported with its error and the others still run.
Prints progress on stderr, then one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

# JAX and torch share the GPU in one process: JAX allocates as it goes instead of taking 75% of
# the memory at start-up. The CPU dry run must not touch an accelerator even where one exists.
# Both are read when JAX starts.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
if "--dry-run" in sys.argv:
    os.environ["JAX_PLATFORMS"] = "cpu"
    os.environ["CUDA_VISIBLE_DEVICES"] = ""

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import flax.linen as nn  # noqa: E402
import harness  # noqa: E402
import jax  # noqa: E402
import llm_throughput  # noqa: E402
import numpy as np  # noqa: E402
import train_throughput  # noqa: E402
from harness import log  # noqa: E402

from flan_jax import models, partitioning, train_step  # noqa: E402
from flan_jax.evaluation import decoding  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Shapes:
    """What each row runs: the GPU sizes, or tiny ones for the CPU dry run."""

    t5: models.ModelConfig
    t5_batch: int
    t5_lengths: dict[str, int]
    llama: models.ModelConfig
    llama_batch: int
    llama_lengths: dict[str, int]
    decode_prompts: int
    decode_lengths: dict[str, int]
    steps: int


def gpu_shapes() -> Shapes:
    return Shapes(
        t5=models.t5_config("base", dtype="bfloat16"),
        t5_batch=64,
        t5_lengths={"inputs": 512, "targets": 114},
        llama=models.llama_config("smollm2-135m", dtype="bfloat16"),
        llama_batch=32,
        llama_lengths={"inputs": 192, "targets": 64},
        decode_prompts=64,
        decode_lengths={"inputs": 512, "targets": 128},
        steps=5,
    )


def dry_run_shapes() -> Shapes:
    tiny_t5 = dict(vocab_size=256, num_encoder_layers=1, num_decoder_layers=1)
    tiny_llama = dict(
        vocab_size=256,
        d_model=64,
        num_heads=2,
        num_kv_heads=1,
        head_dim=32,
        d_ff=128,
        num_layers=1,
        tie_word_embeddings=False,
        bos_token_id=None,
    )
    return Shapes(
        t5=models.t5_config("tiny", **tiny_t5),
        t5_batch=2,
        t5_lengths={"inputs": 32, "targets": 8},
        llama=models.LlamaConfig(**tiny_llama),
        llama_batch=2,
        llama_lengths={"inputs": 24, "targets": 8},
        decode_prompts=2,
        decode_lengths={"inputs": 16, "targets": 4},
        steps=1,
    )


def _row(name: str, fn: Callable[[], dict]) -> dict:
    """One row; an error becomes the row's `error` (the other rows still run)."""
    start = time.perf_counter()
    log(f"== {name}")
    try:
        out = fn()
    except Exception as e:  # the one-shot GPU run reports what it could measure
        traceback.print_exc()
        out = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
    finally:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # give the next row's JAX side the memory torch cached
    out["wall_s"] = round(time.perf_counter() - start, 1)
    return out


def t5_train(s: Shapes, peak: float, gpu: bool) -> dict:
    n = s.t5_batch
    tokens = n * sum(s.t5_lengths.values())
    flops = models.train_flops_per_example(s.t5, s.t5_lengths) * n
    ours = train_throughput.ours(s.t5, n, s.steps, jax.devices()[:1], s.t5_lengths)
    theirs = train_throughput.theirs(s.t5, n, s.steps, gpu, s.t5_lengths)
    row = {"model": "t5-1.1 base" if gpu else "t5 tiny (dry run)", "batch": n}
    return {**row, "lengths": s.t5_lengths, **harness.compare(ours, theirs, tokens, flops, peak)}


def llama_train(s: Shapes, peak: float, gpu: bool) -> dict:
    n = s.llama_batch
    tokens = n * sum(s.llama_lengths.values())
    flops = models.train_flops_per_example(s.llama, s.llama_lengths) * n
    ours = llm_throughput.ours(s.llama, n, s.llama_lengths, s.steps)
    theirs = llm_throughput.theirs(s.llama, n, s.llama_lengths, s.steps, gpu)
    row = {"model": "llama smollm2-135m" if gpu else "llama tiny (dry run)", "batch": n}
    return {**row, "lengths": s.llama_lengths, **harness.compare(ours, theirs, tokens, flops, peak)}


def _timed(fn: Callable[[], Any], repeats: int) -> float:
    """Best seconds of `repeats` calls after one warm-up (compile) call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def t5_decode(s: Shapes, gpu: bool) -> dict:
    """Greedy decoding to the full length, ours (KV cache) vs `generate`, random weights."""
    config, lengths, n = s.t5, s.decode_lengths, s.decode_prompts
    rng = np.random.default_rng(0)
    prompts = rng.integers(2, config.vocab_size, (n, lengths["inputs"]), dtype=np.int32)
    new = lengths["targets"]
    # No EOS id can come out of argmax: every row decodes `new` tokens, as generate does with
    # min_new_tokens == max_new_tokens, so both sides produce the same number of tokens.
    greedy = decoding.DecodeConfig("greedy", eos_id=-1)

    layout = partitioning.Layout.build(partitioning.MeshConfig(data=1), jax.devices()[:1])
    model = models.build_model(config)
    boxed = models.abstract_params(config)
    dummy = models.dummy_batch(config, {"inputs": 4, "targets": 4}, 1)
    params = jax.jit(
        lambda r: nn.unbox(model.init(r, **dummy)["params"]),
        out_shardings=layout.param_shardings(boxed),
    )(jax.random.key(0))

    def run_ours() -> None:
        decoding.decode_rows(model, params, list(prompts), layout, n, lengths, greedy, bucket=False)

    ours_s = _timed(run_ours, s.steps)
    out: dict[str, Any] = {
        "model": "t5-1.1 base" if gpu else "t5 tiny (dry run)",
        "prompts": n,
        "lengths": lengths,
        "ours_tokens_per_s": round(n * new / ours_s, 1),
        "theirs_tokens_per_s": None,
        "ours_over_theirs": None,
    }
    log(f"  ours: {out['ours_tokens_per_s']} tokens/s")

    import torch
    import transformers

    device = "cuda" if gpu and torch.cuda.is_available() else "cpu"
    if gpu and device == "cpu":
        log("  theirs: skipped (torch sees no CUDA device)")
        return out
    hf = transformers.T5ForConditionalGeneration(train_throughput.hf_t5_config(config))
    hf = hf.to(device, dtype=torch.bfloat16 if device == "cuda" else torch.float32).eval()
    ids = torch.from_numpy(prompts).long().to(device)

    def run_theirs() -> None:
        with torch.inference_mode():
            hf.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=new,
                min_new_tokens=new,
                do_sample=False,
                num_beams=1,
                decoder_start_token_id=0,  # T5's: pad starts the decoder
                pad_token_id=0,
                eos_token_id=1,
            )
        if device == "cuda":
            torch.cuda.synchronize()

    theirs_s = _timed(run_theirs, s.steps)
    out["theirs_tokens_per_s"] = round(n * new / theirs_s, 1)
    out["ours_over_theirs"] = round(theirs_s / ours_s, 2)
    log(f"  theirs ({device}): {out['theirs_tokens_per_s']} tokens/s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes, same code")
    parser.add_argument("--only", nargs="+", choices=("t5_train", "llama_train", "t5_decode"))
    parser.add_argument(
        "--budget_s",
        type=float,
        default=360.0,
        help="start no further row after this many seconds (rows skipped are named)",
    )
    args = parser.parse_args()
    start = time.perf_counter()

    default = jax.devices()[0]
    gpu = not args.dry_run and default.platform == "gpu"
    if not args.dry_run and not gpu:
        sys.exit(f"device_check: JAX sees no GPU (devices on {default.platform}); use --dry-run")
    shapes = dry_run_shapes() if args.dry_run else gpu_shapes()
    if gpu:
        peak, peak_source = train_step.peak_flops_total()
        peak /= jax.device_count()  # one device per side
    else:
        peak, peak_source = train_step.measured_cpu_peak_flops(256, 2), "measured CPU matmul"

    import torch
    import transformers

    result: dict[str, Any] = {
        "bench": "device_check",
        "dry_run": args.dry_run,
        "device": default.device_kind,
        "platform": default.platform,
        "jax": jax.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "machine": f"{os.cpu_count()}-core {platform.machine()}",
        "peak_flops": peak,
        "peak_source": peak_source,
    }
    rows = {
        "t5_train": lambda: t5_train(shapes, peak, gpu),
        "llama_train": lambda: llama_train(shapes, peak, gpu),
        "t5_decode": lambda: t5_decode(shapes, gpu),
    }
    for name, fn in rows.items():
        if args.only is not None and name not in args.only:
            continue
        if time.perf_counter() - start > args.budget_s:
            result[name] = {"error": f"skipped: past the {args.budget_s:.0f}s budget"}
            continue
        result[name] = _row(name, fn)
    result["wall_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
