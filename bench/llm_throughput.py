"""Training throughput of a Llama-family model: our jitted train step against `transformers`'
PyTorch `LlamaForCausalLM` with the same shapes, in the same run.

    .venv/bin/python bench/llm_throughput.py                 # CPU: "small", ~2-4 minutes on 2 cores
    .venv/bin/python bench/llm_throughput.py --size smollm2-135m --batch 8 --gpu

Model: `--size small` (the default, sized for a CPU) is a Llama with d_model 256, 4 layers,
4 heads over 2 K/V heads of 64, d_ff 768, vocab 8192, untied; any `llama` preset name (e.g.
smollm2-135m) works too. Both sides get the same synthetic FLAN-style rows: inputs then targets
in one sequence (192 + 64 tokens by default), every token real, the loss on the targets only
(ours: seqio's prefix-LM batch with loss weights; theirs: labels -100 on the inputs), AdamW
(lr 1e-4, betas 0.9/0.999, eps 1e-8, no weight decay), f32 on CPU; with `--gpu`, bf16
activations over f32 params on both sides (ours: `dtype="bfloat16"`; theirs: autocast).
Ours runs on one device (extra virtual CPU devices would only split the same cores); torch uses
all cores. One step compiles / warms up, then N steps are timed, each waited for; tokens/s use
the best timed step (other processes on a shared machine only add time), the mean beside it.

Prints progress on stderr, then one JSON line on stdout: tokens/s ours and theirs, and the ratio.
`measure()` is also bench/train_throughput.py's Llama row (with MFU against its measured peak).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
from typing import Any

import harness  # bench/ is the script's directory
import jax
import numpy as np
from harness import log

from flan_jax import optim, partitioning, train_step
from flan_jax.models import (
    LlamaConfig,
    llama_config,
    param_count,
    train_flops_per_example,
)

SMALL = dict(
    vocab_size=8192,
    d_model=256,
    num_heads=4,
    num_kv_heads=2,
    head_dim=64,
    d_ff=768,
    num_layers=4,
    tie_word_embeddings=False,
    bos_token_id=None,
)
LR = 1e-4


def synthetic_rows(
    batch: int, lengths: dict[str, int], vocab: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(tokens [b, S], target mask [b, S]): random real tokens, inputs then targets."""
    rng = np.random.default_rng(seed)
    total = lengths["inputs"] + lengths["targets"]
    tokens = rng.integers(2, vocab, (batch, total), dtype=np.int32)
    is_target = np.zeros((batch, total), np.int32)
    is_target[:, lengths["inputs"] :] = 1
    return tokens, is_target


def ours(config: LlamaConfig, batch: int, lengths: dict[str, int], steps: int) -> dict:
    cfg = train_step.TrainConfig(
        model_dir="/unused",
        mixture_or_task_name="synthetic",
        task_feature_lengths=lengths,
        train_steps=1_000_000,
        batch_size=batch,
        model=config,
        mesh=partitioning.MeshConfig(data=1),
        optimizer=optim.OptimizerConfig(name="adamw", learning_rate=LR),
        pack=False,
    )
    tokens, is_target = synthetic_rows(batch, lengths, config.vocab_size)
    host_batch = {
        "decoder_target_tokens": tokens,
        "decoder_input_tokens": np.pad(tokens, ((0, 0), (1, 0)))[:, :-1],
        "decoder_loss_weights": is_target,
        # The prefix-LM marker (inputs plus one position); these models ignore it (causal).
        "decoder_causal_attention": np.broadcast_to(
            np.arange(tokens.shape[1]) <= lengths["inputs"], tokens.shape
        ).astype(np.int32),
    }
    return harness.run_ours(cfg, host_batch, steps, jax.devices()[:1])


def theirs(
    config: LlamaConfig, batch: int, lengths: dict[str, int], steps: int, gpu: bool
) -> dict | None:
    import torch
    import transformers

    device = "cuda" if gpu and torch.cuda.is_available() else "cpu"
    if gpu and device == "cpu":
        log("  theirs: skipped (torch sees no CUDA device)")
        return None
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    hf_config = transformers.LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.d_model,
        intermediate_size=config.d_ff,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads,
        head_dim=config.head_dim,
        rms_norm_eps=config.norm_epsilon,
        rope_theta=config.rope_theta,
        tie_word_embeddings=config.tie_word_embeddings,
        max_position_embeddings=max(config.max_position_embeddings, sum(lengths.values())),
    )
    model = transformers.LlamaForCausalLM(hf_config).to(device).train()
    n = sum(p.numel() for p in model.parameters())
    if n != param_count(config):
        raise RuntimeError(f"transformers' Llama has {n} params, ours {param_count(config)}")
    opt = torch.optim.AdamW(
        model.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0
    )
    tokens, is_target = synthetic_rows(batch, lengths, config.vocab_size)
    ids = torch.from_numpy(tokens).long().to(device)
    # transformers shifts labels itself: label j is predicted from positions < j.
    labels = torch.from_numpy(np.where(is_target > 0, tokens, -100)).long().to(device)

    def step() -> float:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            out = model(input_ids=ids, labels=labels)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return out.loss.detach().item()  # waits for the device

    return harness.run_torch(step, steps, device)


def measure(
    size: str = "small",
    batch: int = 8,
    lengths: dict[str, int] | None = None,
    steps: int = 5,
    gpu: bool = False,
    hf: bool = True,
    peak_flops: float | None = None,
) -> dict[str, Any]:
    """Ours and (with `hf`) transformers' Llama train step on the same shapes: the result row
    (tokens/s, MFU when `peak_flops` is given, the ratio ours / theirs). Also called by
    bench/train_throughput.py for its Llama row."""
    lengths = lengths or {"inputs": 192, "targets": 64}
    config = LlamaConfig(**SMALL) if size == "small" else llama_config(size)
    if gpu:
        config = dataclasses.replace(config, dtype="bfloat16")
    tokens_per_step = batch * (lengths["inputs"] + lengths["targets"])
    flops_per_step = train_flops_per_example(config, lengths) * batch
    log(
        f"Llama {size}: {param_count(config) / 1e6:.1f}M params, batch {batch} x "
        f"{lengths['inputs']}+{lengths['targets']} tokens, {steps} timed steps, backend "
        f"{jax.default_backend()}"
    )

    def summarize(run: dict[str, Any]) -> dict[str, Any]:
        out = {**run, "tokens_per_s": round(tokens_per_step / run["step_s"], 1)}
        if peak_flops:
            out["mfu"] = round(flops_per_step / run["step_s"] / peak_flops, 4)
        return out

    mine = ours(config, batch, lengths, steps)
    ref = theirs(config, batch, lengths, steps, gpu) if hf else None
    result: dict[str, Any] = {
        "family": "llama",
        "size": size,
        "params": param_count(config),
        "batch": batch,
        "lengths": lengths,
        "dtype": config.dtype,
        "optimizer": f"AdamW (lr {LR}, no weight decay)",
        "ours": summarize(mine),
        "theirs": None,
        "ratio_ours_over_theirs": None,
    }
    if ref is not None:
        result["theirs"] = summarize(ref)
        result["ratio_ours_over_theirs"] = round(ref["step_s"] / mine["step_s"], 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="small", help="'small' or a llama preset name")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--inputs", type=int, default=192)
    parser.add_argument("--targets", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="timed steps (after one warm-up)")
    parser.add_argument("--gpu", action="store_true", help="bf16 activations, CUDA for torch")
    args = parser.parse_args()

    gpu = args.gpu or jax.default_backend() == "gpu"
    lengths = {"inputs": args.inputs, "targets": args.targets}
    row = measure(args.size, args.batch, lengths, args.steps, gpu)
    result: dict[str, Any] = {
        "bench": "llm_train_throughput",
        **row,
        "backend": jax.default_backend(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
