"""Training throughput and MFU of our jitted train step, against Hugging Face's PyTorch T5, plus
per-device memory of T5 small under data=8 and FSDP 8 from the compiled executables.

    .venv/bin/python bench/train_throughput.py          # CPU: ~4-5 minutes on a 2-core CPU
    .venv/bin/python bench/train_throughput.py --gpu    # T5 1.1 base, bf16 activations

CPU (default when no GPU is present):
* throughput: T5 1.1 tiny (T5's 32128-id vocabulary, and the smoke run's 259-id byte
  vocabulary: `tiny_byte`) and small, synthetic random tokens, inputs 512 / targets 114 (no
  packing, no padding), on a 1-device mesh: 8 virtual devices on 2 cores would only split the
  same cores, and the MFU peak is measured on one device (the best of ten 2048^3 f32 matmuls
  through XLA, ~1 s: what the cores sustain). One step compiles and warms up, then N steps are
  timed, each waited for with ``block_until_ready``; tokens/s and MFU use the best timed step (other
  processes on a shared machine only add time), the mean is reported beside it.
* reference: ``transformers`` ``T5ForConditionalGeneration`` with the same shapes (gated-GELU,
  untied logits, same d_model/heads/d_kv/d_ff/layers/vocab, dropout 0), same batch and lengths,
  ``transformers.optimization.Adafactor(lr=1e-3, scale_parameter=True, relative_step=False,
  warmup_init=False, clip_threshold=1.0, decay_rate=-0.8, beta1=None)``: the same update rule
  as ours (optax Adafactor, decay 0.8, clipping 1.0, parameter scaling, no momentum, constant
  LR 1e-3). torch uses all cores. MFU counts the same model FLOPs for both (t5.md formula).
  transformers >= 5 ties ``lm_head`` to the embedding whatever the config says; the bench unties
  it so both models have the same parameters (checked). Their loss starts higher: transformers
  draws the untied LM head with std 1; throughput does not depend on the values.
* allocator: the script restarts itself under the C-allocator settings `flan-jax train` and
  `eval` run under (flan_jax/host_memory.py: freed step buffers are reused, not unmapped and
  faulted in again). transformers runs in the same process, so it gets them too; both sides
  are equally affected by ``--system_allocator``, which keeps the system defaults instead.
* memory: T5 small, global batch 8 at 512/114, compiled ahead of time (``flan-jax preflight``'s
  code) for 8 virtual CPU devices under data=8 ("1d" rules) and data=1 x fsdp=8 ("fsdp" rules).
* llama: a small Llama-family model against transformers' LlamaForCausalLM with the same
  shapes (bench/llm_throughput.py, which documents the row; ``--no_llama`` skips it).

GPU (``--gpu``, or automatic when JAX sees a GPU): T5 1.1 base with bf16 activations (f32
params), on all GPUs (data parallel), MFU against the chip's bf16 peak; memory from the real
device's compiled executable; the PyTorch reference runs only if torch sees CUDA (bf16 autocast).

Prints progress on stderr, then one JSON line on stdout.
"""

from __future__ import annotations

import os

# Eight virtual CPU devices for the memory part; read when JAX first starts a CPU backend (and
# ignored by GPU backends).
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
from collections.abc import Mapping, Sequence  # noqa: E402
from typing import Any  # noqa: E402

import harness  # noqa: E402  (bench/ is the script's directory)
import jax  # noqa: E402
import numpy as np  # noqa: E402
from harness import log  # noqa: E402

from flan_jax import host_memory, partitioning, train_step  # noqa: E402
from flan_jax.models import (  # noqa: E402
    T5Config,
    param_count,
    t5_config,
    train_flops_per_example,
)

LENGTHS = {"inputs": 512, "targets": 114}


def _config(
    model: T5Config, batch: int, mesh: partitioning.MeshConfig, lengths: Mapping[str, int] = LENGTHS
) -> train_step.TrainConfig:
    return train_step.TrainConfig(
        model_dir="/unused",
        mixture_or_task_name="synthetic",
        task_feature_lengths=lengths,
        train_steps=1_000_000,
        batch_size=batch,
        model=model,
        mesh=mesh,
        pack=False,  # the reference has no packing; every token is real
    )


def synthetic_batch(
    batch: int, vocab: int, seed: int = 0, lengths: Mapping[str, int] = LENGTHS
) -> dict[str, np.ndarray]:
    """Random non-pad tokens (ids >= 2), full length, teacher-forced decoder inputs."""
    rng = np.random.default_rng(seed)
    enc = rng.integers(2, vocab, (batch, lengths["inputs"]), dtype=np.int32)
    targets = rng.integers(2, vocab, (batch, lengths["targets"]), dtype=np.int32)
    dec_in = np.concatenate([np.zeros((batch, 1), np.int32), targets[:, :-1]], axis=1)
    return {
        "encoder_input_tokens": enc,
        "decoder_input_tokens": dec_in,
        "decoder_target_tokens": targets,
        "decoder_loss_weights": np.ones_like(targets),
    }


# ---------------------------------------------------------------------------------------------
# Ours: the jitted train step with the shardings train() uses.


def ours(
    model_cfg: T5Config,
    batch: int,
    steps: int,
    devices: Sequence[Any],
    lengths: Mapping[str, int] = LENGTHS,
) -> dict:
    cfg = _config(model_cfg, batch, partitioning.MeshConfig(data=len(devices)), lengths)
    host_batch = synthetic_batch(batch, model_cfg.vocab_size, lengths=lengths)
    return harness.run_ours(cfg, host_batch, steps, devices)


# ---------------------------------------------------------------------------------------------
# Theirs: Hugging Face transformers' PyTorch T5 with its Adafactor.


def hf_t5_config(model_cfg: T5Config) -> Any:
    """transformers' T5Config with our T5 1.1 shapes (gated-GELU, untied, no dropout)."""
    import transformers

    return transformers.T5Config(
        vocab_size=model_cfg.vocab_size,
        d_model=model_cfg.d_model,
        d_kv=model_cfg.head_dim,
        d_ff=model_cfg.d_ff,
        num_layers=model_cfg.num_encoder_layers,
        num_decoder_layers=model_cfg.num_decoder_layers,
        num_heads=model_cfg.num_heads,
        relative_attention_num_buckets=model_cfg.relative_attention_num_buckets,
        relative_attention_max_distance=model_cfg.relative_attention_max_distance,
        dropout_rate=0.0,
        layer_norm_epsilon=model_cfg.layer_norm_epsilon,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
    )


def theirs(
    model_cfg: T5Config, batch: int, steps: int, gpu: bool, lengths: Mapping[str, int] = LENGTHS
) -> dict | None:
    import torch
    import transformers
    from transformers.optimization import Adafactor

    device = "cuda" if gpu and torch.cuda.is_available() else "cpu"
    if gpu and device == "cpu":
        log("  theirs: skipped (torch sees no CUDA device)")
        return None
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    model = transformers.T5ForConditionalGeneration(hf_t5_config(model_cfg))
    # transformers >= 5 always ties lm_head to the input embedding (tie_word_embeddings=False
    # only turns off the d_model**-0.5 output scaling): untie it, as in T5 1.1 and ours.
    if model.lm_head.weight is model.shared.weight:
        model.lm_head.weight = torch.nn.Parameter(model.shared.weight.detach().clone())
    model = model.to(device).train()
    n = sum(p.numel() for p in model.parameters())
    if n != param_count(model_cfg):
        raise RuntimeError(f"HF T5 has {n} params, ours {param_count(model_cfg)}: shapes differ")
    opt = Adafactor(
        model.parameters(),
        lr=1e-3,
        scale_parameter=True,
        relative_step=False,
        warmup_init=False,
        clip_threshold=1.0,
        decay_rate=-0.8,
        beta1=None,
    )
    data = {
        k: torch.from_numpy(v).long().to(device)
        for k, v in synthetic_batch(batch, model_cfg.vocab_size, lengths=lengths).items()
    }

    def step() -> float:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            out = model(
                input_ids=data["encoder_input_tokens"],
                decoder_input_ids=data["decoder_input_tokens"],
                labels=data["decoder_target_tokens"],
            )
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return out.loss.detach().item()  # .item() waits for the device

    return harness.run_torch(step, steps, device)


# ---------------------------------------------------------------------------------------------


def throughput(
    size: str,
    model_cfg: T5Config,
    batch: int,
    steps: int,
    devices,
    peak: float,
    gpu: bool,
    hf: bool,
) -> dict:
    tokens = batch * (LENGTHS["inputs"] + LENGTHS["targets"])
    flops = train_flops_per_example(model_cfg, LENGTHS) * batch
    log(
        f"{size}: {param_count(model_cfg) / 1e6:.1f}M params, batch {batch}, "
        f"{flops / 1e12:.3f} TFLOP/step"
    )
    mine = ours(model_cfg, batch, steps, devices)
    ref = theirs(model_cfg, batch, steps, gpu) if hf else None
    return {
        "batch": batch,
        "params": param_count(model_cfg),
        **harness.compare(mine, ref, tokens, flops, peak),
    }


def memory(model_cfg: T5Config, batch: int, meshes: dict, devices) -> dict:
    # Imported here: preflight lays the batch out with seqio's feature converters (TensorFlow),
    # which the throughput part does not need; it starts with the JAX stack alone.
    from flan_jax import preflight

    out = {}
    for name, mesh_cfg in meshes.items():
        report = preflight.preflight(_config(model_cfg, batch, mesh_cfg), devices=devices)
        out[name] = {
            "param_bytes": report.param_bytes,
            "opt_state_bytes": report.opt_state_bytes,
            "param_plus_opt_bytes": report.param_bytes + report.opt_state_bytes,
            "batch_bytes": report.batch_bytes,
            "temp_bytes": report.temp_bytes,
            "other_bytes": report.other_bytes,
            "total_bytes": report.total_bytes,
            "compile_s": round(report.compile_seconds or 0.0, 1),
        }
        log(
            f"  {name}: params+opt {out[name]['param_plus_opt_bytes'] / 2**20:.1f} MiB, temp "
            f"{report.temp_bytes / 2**20:.1f} MiB, total {report.total_bytes / 2**20:.1f} MiB "
            f"per device"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--gpu", action="store_true", help="T5 base, bf16 (default if a GPU is seen)"
    )
    parser.add_argument(
        "--cpu", action="store_true", help="the CPU benchmark even if a GPU is seen"
    )
    parser.add_argument("--steps", type=int, default=2, help="timed steps per configuration")
    parser.add_argument("--tiny_batch", type=int, default=8)
    parser.add_argument("--small_batch", type=int, default=2)
    parser.add_argument("--gpu_batch", type=int, default=64)
    parser.add_argument("--no_hf", action="store_true", help="skip the PyTorch reference")
    parser.add_argument(
        "--system_allocator",
        action="store_true",
        help="keep the C allocator's defaults instead of the settings flan-jax train runs under "
        "(flan_jax/host_memory.py); either way both sides share this process and its allocator",
    )
    parser.add_argument("--no_memory", action="store_true", help="skip the memory analysis")
    parser.add_argument(
        "--no_llama", action="store_true", help="skip the Llama row (bench/llm_throughput.py)"
    )
    args = parser.parse_args()
    if not args.system_allocator:
        host_memory.reexec_with_tuned_allocator()  # as `flan-jax train` does; returns once set

    import tensorflow as tf  # pulled in by flan_jax's input pipeline: keep it off the GPU

    tf.config.set_visible_devices([], "GPU")
    default = jax.devices()[0]
    gpu = not args.cpu and (args.gpu or default.platform == "gpu")
    if gpu and default.platform != "gpu":
        sys.exit("--gpu: JAX sees no GPU (jax.devices() is on " + default.platform + ")")
    result: dict[str, Any] = {
        "benchmark": "train_throughput",
        "lengths": LENGTHS,
        "jax": jax.__version__,
        "optimizer": "Adafactor (decay 0.8, clip 1.0, param scaling, no momentum, lr 1e-3)",
        "allocator": os.environ.get("GLIBC_TUNABLES") or "system defaults",
    }

    if gpu:
        devices = jax.devices()
        peak, source = train_step.peak_flops_total()
        result |= {
            "mode": "gpu",
            "device": default.device_kind,
            "devices": len(devices),
            "peak_flops": peak,
            "peak_source": source,
        }
        base = t5_config("base", dtype="bfloat16")
        result["throughput"] = {
            "base_bf16": throughput(
                "base (bf16)", base, args.gpu_batch, args.steps, devices, peak, True, not args.no_hf
            )
        }
        if not args.no_memory:
            log("memory: T5 base bf16 on the GPU mesh")
            result["memory_base_bf16"] = memory(
                base,
                args.gpu_batch,
                {f"data={len(devices)}": partitioning.MeshConfig(data=-1)},
                devices,
            )
    else:
        cpu = jax.devices("cpu")
        # Ten 2048^3 matmuls (~1 s): the rate the cores sustain. On a shared VM a few short
        # ones can read a burst rate well above what a minute-long benchmark gets.
        peak = train_step.measured_cpu_peak_flops(2048, 10)
        log(f"measured CPU matmul peak: {peak / 1e9:.1f} GFLOP/s ({os.cpu_count()} cores)")
        result |= {
            "mode": "cpu",
            "machine": f"{os.cpu_count()}-core {platform.machine()} CPU",
            "cpu_peak_gflops": round(peak / 1e9, 1),
            "peak_source": "measured f32 matmul through XLA on one device (best of ten 2048^3)",
            "mesh": "1 device (data=1)",
        }
        # tiny_byte: the smoke run's byte vocabulary (259 ids), where the projection onto the
        # vocabulary no longer hides the rest of the step.
        rows = (
            ("tiny", t5_config("tiny"), args.tiny_batch),
            ("tiny_byte", t5_config("tiny", vocab_size=259), args.tiny_batch),
            ("small", t5_config("small"), args.small_batch),
        )
        result["throughput"] = {
            name: throughput(name, cfg, batch, args.steps, cpu[:1], peak, False, not args.no_hf)
            for name, cfg, batch in rows
        }
        if not args.no_memory:
            log("memory: T5 small, global batch 8, compiled for 8 virtual CPU devices")
            result["memory_small_8dev"] = memory(
                t5_config("small"),
                8,
                {
                    "data=8": partitioning.MeshConfig(data=8),
                    "fsdp=8": partitioning.MeshConfig(data=1, fsdp=8, rules="fsdp"),
                },
                cpu[:8],
            )
            mem = result["memory_small_8dev"]
            result["fsdp_param_opt_reduction"] = round(
                mem["data=8"]["param_plus_opt_bytes"] / mem["fsdp=8"]["param_plus_opt_bytes"], 2
            )
    # ---- Llama row: bench/llm_throughput.py's measurement (our Llama train step against
    # transformers' PyTorch LlamaForCausalLM, same shapes, AdamW), one device. --no_llama skips.
    if not args.no_llama:
        import llm_throughput  # beside this file (bench/ is the script's directory)

        result["llama"] = llm_throughput.measure(
            "smollm2-135m" if gpu else "small",
            steps=args.steps,
            gpu=gpu,
            hf=not args.no_hf,
            peak_flops=peak / (len(jax.devices()) if gpu else 1),  # one device's peak
        )
    # ---- end of the Llama row
    print(json.dumps(result))


if __name__ == "__main__":
    main()
