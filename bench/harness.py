"""What the training benchmarks share: timing, our jitted train step on a mesh, and the
reporting of a PyTorch reference step.

Imports only the JAX stack (no TensorFlow, seqio or gin), as `device_check.py` requires.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from flan_jax import optim, partitioning, train_step
from flan_jax.models import build_model


def log(msg: str) -> None:
    """Progress goes to stderr; stdout is kept for the final JSON line."""
    print(msg, file=sys.stderr, flush=True)


def timed_steps(step: Callable[[], None], steps: int) -> tuple[float, float]:
    """(best, mean) seconds per call of ``step()`` (which blocks), after one compile/warm-up call.

    The best step is the headline: on a shared machine other processes only ever add time.
    """
    step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times), sum(times) / len(times)


def run_ours(
    cfg: train_step.TrainConfig,
    host_batch: Mapping[str, np.ndarray],
    steps: int,
    devices: Sequence[Any],
) -> dict:
    """Times ``train_step.make_train_step`` as `flan_jax.train` jits it (shardings, donation)
    on a mesh over `devices`, on one fixed global batch."""
    layout = partitioning.Layout.build(cfg.mesh, devices)
    model = build_model(cfg.model)
    schedule = optim.make_schedule(cfg.optimizer, cfg.train_steps)
    tx = optim.make_optimizer(cfg.optimizer, cfg.train_steps)
    _, shardings, dummy, rng = train_step.build_state_shardings(model, tx, cfg, layout)
    with layout.context():
        params = jax.jit(
            lambda r: nn.unbox(model.init(r, **dummy)["params"]), out_shardings=shardings["params"]
        )(rng)
        opt_state = jax.jit(tx.init, out_shardings=shardings["opt_state"])(params)
        step_fn = jax.jit(
            train_step.make_train_step(model, tx, cfg, schedule),
            in_shardings=(shardings, partitioning.batch_sharding(layout.mesh)),
            out_shardings=(shardings, partitioning.replicated(layout.mesh)),
            donate_argnums=(0,),
        )
    state = {
        "step": jax.device_put(jnp.zeros((), jnp.int32), shardings["step"]),
        "params": params,
        "opt_state": opt_state,
    }
    batch = jax.device_put(dict(host_batch), partitioning.batch_sharding(layout.mesh))
    holder = {"state": state}
    losses: list[float] = []

    def one_step() -> None:
        with layout.context():
            holder["state"], metrics = step_fn(holder["state"], batch)
        losses.append(float(jax.block_until_ready(metrics)["loss"]))

    start = time.perf_counter()
    best, mean = timed_steps(one_step, steps)
    log(
        f"  ours: {best:.3f} s/step (mean {mean:.3f}; {time.perf_counter() - start:.0f}s with "
        f"compile), loss {losses[0]:.3f} -> {losses[-1]:.3f}"
    )
    return {"step_s": best, "mean_step_s": mean, "loss_first": losses[0], "loss_last": losses[-1]}


def run_torch(step: Callable[[], float], steps: int, device: str) -> dict:
    """Times a PyTorch training step ``step() -> loss`` (which waits for the device)."""
    import torch

    losses: list[float] = []
    best, mean = timed_steps(lambda: losses.append(step()), steps)
    log(
        f"  theirs ({device}, torch {torch.__version__}, {torch.get_num_threads()} threads): "
        f"{best:.3f} s/step (mean {mean:.3f}), loss {losses[0]:.3f} -> {losses[-1]:.3f}"
    )
    return {
        "step_s": best,
        "mean_step_s": mean,
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "device": device,
    }


def compare(ours: dict, theirs: dict | None, tokens: int, flops: float, peak: float) -> dict:
    """Both sides of a row (tokens/s, MFU against `peak`, losses) and ours / theirs; `tokens`
    and `flops` are per step."""

    def side(run: dict) -> dict:
        return {
            "tokens_per_s": round(tokens / run["step_s"], 1),
            "step_s": round(run["step_s"], 4),
            "mean_step_s": round(run["mean_step_s"], 4),
            "mfu": round(flops / run["step_s"] / peak, 4),
            "loss_first_last": [round(run["loss_first"], 3), round(run["loss_last"], 3)],
        }

    out: dict[str, Any] = {"ours": side(ours), "theirs": None, "ours_over_theirs": None}
    if theirs is not None:
        out["theirs"] = side(theirs)
        out["ours_over_theirs"] = round(theirs["step_s"] / ours["step_s"], 2)
    return out
