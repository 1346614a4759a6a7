"""Optimizers and learning-rate schedules (optax), with T5X fine-tuning defaults.

The defaults reproduce T5X/FLAN fine-tuning: Adafactor with decay_rate 0.8, no momentum, update
clipping 1.0, parameter scaling and a constant learning rate of 1e-3.

Schedules (``step`` counts optimizer updates from 0, ``W`` = warmup_steps, ``T`` = total_steps,
``lr`` = learning_rate, the peak value; ``warm(step) = min(1, step / W)``, or 1 when W = 0):

* ``constant``: ``lr * warm(step)``
* ``rsqrt``:    ``lr * warm(step) * sqrt(W / max(step, W))``, needs W > 0. After warmup this is
  exactly T5X's ``constant * rsqrt_decay`` (``base / sqrt(max(step, W))``) with
  ``base = lr * sqrt(W)``; T5X holds the rate flat during warmup where we ramp it linearly.
* ``cosine``:   ``lr * warm(step)`` for step < W, then
  ``lr * (f + (1 - f) * 0.5 * (1 + cos(pi * min(1, (step - W) / (T - W)))))``,
  with f = final_lr_fraction; needs T > W.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

OPTIMIZERS: tuple[str, ...] = ("adafactor", "adamw")
SCHEDULES: tuple[str, ...] = ("constant", "rsqrt", "cosine")


@dataclass(frozen=True)
class OptimizerConfig:
    """What to optimize with. Adafactor fields follow T5X; b1/b2/eps are AdamW's.

    weight_decay: AdamW's decoupled decay (scaled by the learning rate); for Adafactor, optax's
    `weight_decay_rate` (added to the update as is, not scaled by the learning rate). Either way
    it applies only to params of rank >= 2 (not to norm scales or biases).
    """

    name: str = "adafactor"
    learning_rate: float = 1e-3
    schedule: str = "constant"
    warmup_steps: int = 0
    final_lr_fraction: float = 0.0
    # Adafactor.
    decay_rate: float = 0.8
    clipping_threshold: float | None = 1.0
    multiply_by_parameter_scale: bool = True
    momentum: float | None = None
    # Both.
    weight_decay: float = 0.0
    # AdamW.
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    # Global-norm gradient clipping before the optimizer; None = off.
    grad_clip_norm: float | None = None

    def __post_init__(self) -> None:
        def bad(field: str, fix: str) -> ValueError:
            return ValueError(f"OptimizerConfig.{field}={getattr(self, field)!r} is invalid; {fix}")

        if self.name not in OPTIMIZERS:
            raise bad("name", f"use one of {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise bad("schedule", f"use one of {SCHEDULES}")
        if not self.learning_rate > 0:
            raise bad("learning_rate", "use a positive number such as 1e-3")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise bad("warmup_steps", "use an int >= 0")
        if self.schedule == "rsqrt" and self.warmup_steps == 0:
            raise bad("warmup_steps", "schedule='rsqrt' decays from warmup_steps on; use > 0")
        if not 0.0 <= self.final_lr_fraction <= 1.0:
            raise bad("final_lr_fraction", "use a fraction in [0, 1]")
        if not 0.0 < self.decay_rate <= 1.0:
            raise bad("decay_rate", "use a value in (0, 1]; T5X uses 0.8")
        if self.clipping_threshold is not None and not self.clipping_threshold > 0:
            raise bad("clipping_threshold", "use a positive number (T5X: 1.0) or None")
        if self.momentum is not None and not 0.0 <= self.momentum < 1.0:
            raise bad("momentum", "use a value in [0, 1) or None (T5X fine-tuning: None)")
        if not self.weight_decay >= 0:
            raise bad("weight_decay", "use a number >= 0")
        for field in ("b1", "b2"):
            if not 0.0 <= getattr(self, field) < 1.0:
                raise bad(field, "use a value in [0, 1)")
        if not self.eps > 0:
            raise bad("eps", "use a small positive number such as 1e-8")
        if self.grad_clip_norm is not None and not self.grad_clip_norm > 0:
            raise bad("grad_clip_norm", "use a positive number or None")


def make_schedule(cfg: OptimizerConfig, total_steps: int) -> optax.Schedule:
    """The learning rate as a function of the update count (formulas in the module docstring)."""
    if cfg.schedule == "cosine" and total_steps <= cfg.warmup_steps:
        raise ValueError(
            f"cosine schedule needs total_steps > warmup_steps, got total_steps={total_steps} "
            f"and warmup_steps={cfg.warmup_steps}; train longer or warm up for fewer steps"
        )
    lr, warmup = cfg.learning_rate, cfg.warmup_steps

    def warm(step: jax.Array) -> jax.Array:
        return jnp.minimum(1.0, step / warmup) if warmup else jnp.ones_like(step)

    def schedule(count: jax.Array | int) -> jax.Array:
        step = jnp.asarray(count, jnp.float32)
        if cfg.schedule == "constant":
            return lr * warm(step)
        if cfg.schedule == "rsqrt":
            return lr * warm(step) * jnp.sqrt(warmup / jnp.maximum(step, warmup))
        progress = jnp.clip((step - warmup) / (total_steps - warmup), 0.0, 1.0)
        cosine = 0.5 * (1.0 + jnp.cos(math.pi * progress))
        decayed = cfg.final_lr_fraction + (1.0 - cfg.final_lr_fraction) * cosine
        return lr * jnp.where(step < warmup, warm(step), decayed)

    return schedule


def _matrices_only(params: optax.Params) -> optax.Params:
    # Weight decay on norm scales and biases only hurts; decay rank >= 2 params.
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def scale_by_param_rms(min_scale: float = 1e-3) -> optax.GradientTransformation:
    """Adafactor's parameter scaling: each update times `max(rms(param), min_scale)`.

    The same numbers as `optax.scale_by_param_block_rms` (and the same empty state), computed
    with one reduction per parameter. optax's goes through `safe_root_mean_squares`, which is
    written for differentiating through it: it selects between the parameter and ones into a
    full-size copy and reduces again. Nothing differentiates an optimizer update, and the copy
    cost 4-5% of a T5 small train step on CPU (one write per parameter element, every step).
    """

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("scale_by_param_rms needs the params passed to update()")

        def scaled(u: jax.Array, p: jax.Array) -> jax.Array:
            rms = jnp.sqrt(jnp.mean(jnp.square(p)))
            return u * jnp.maximum(rms, min_scale)

        return jax.tree.map(scaled, updates, params), state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)


def adafactor(cfg: OptimizerConfig, schedule: optax.Schedule) -> optax.GradientTransformation:
    """`optax.adafactor` with T5X's settings, transform for transform (so the optimizer state,
    and with it every checkpoint, has optax's structure), except that the parameter scaling is
    `scale_by_param_rms` (the same numbers, cheaper)."""
    chain = [
        # T5X's epsilon1 and factoring threshold (optax's defaults, stated for the record).
        optax.scale_by_factored_rms(
            decay_rate=cfg.decay_rate, min_dim_size_to_factor=128, epsilon=1e-30
        )
    ]
    if cfg.clipping_threshold is not None:
        chain.append(optax.clip_by_block_rms(cfg.clipping_threshold))
    chain.append(optax.scale_by_learning_rate(schedule, flip_sign=False))
    if cfg.multiply_by_parameter_scale:
        chain.append(scale_by_param_rms())
    if cfg.momentum is not None:
        chain.append(optax.ema(cfg.momentum, debias=False, accumulator_dtype=jnp.float32))
    if cfg.weight_decay:
        chain.append(optax.add_decayed_weights(cfg.weight_decay, mask=_matrices_only))
    chain.append(optax.scale(-1))
    return optax.chain(*chain)


def make_optimizer(cfg: OptimizerConfig, total_steps: int) -> optax.GradientTransformation:
    """The optax optimizer for `cfg`, with optional global-norm clipping in front."""
    schedule = make_schedule(cfg, total_steps)
    if cfg.name == "adafactor":
        tx = adafactor(cfg, schedule)
    else:
        tx = optax.adamw(
            learning_rate=schedule,
            b1=cfg.b1,
            b2=cfg.b2,
            eps=cfg.eps,
            weight_decay=cfg.weight_decay,
            mask=_matrices_only,
        )
    if cfg.grad_clip_norm is not None:
        tx = optax.chain(optax.clip_by_global_norm(cfg.grad_clip_norm), tx)
    return tx
