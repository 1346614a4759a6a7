"""The compute of training: the run's config, the jitted update step, the abstract train state.

Imports no TensorFlow, seqio or gin (only JAX, flax and optax), so a benchmark or a GPU box with
just the JAX stack can build and time the step. `flan_jax.train` wraps it in the loop (data,
checkpoints, metrics, evals).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import time
from collections.abc import Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from flan_jax import models, optim, partitioning
from flan_jax.models import ModelConfig, losses


class TrainingDiverged(RuntimeError):
    """The loss became NaN/inf; the last good checkpoint is kept."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs (T5X's gin macros map onto these fields).

    Attributes:
      model_dir: MODEL_DIR: checkpoints, TensorBoard logs, the operative config.
      mixture_or_task_name: MIXTURE_OR_TASK_NAME.
      task_feature_lengths: TASK_FEATURE_LENGTHS, e.g. {"inputs": 1024, "targets": 256}.
      train_steps: TRAIN_STEPS, the total step count (a resumed run continues up to it).
      batch_size: BATCH_SIZE, global examples (packed rows) per step.
      loss_normalizing_factor: None normalizes per target token; a number divides the summed
        loss by it (T5X's fixed factor, e.g. 233472 for FLAN's batch x target length).
      microbatches: gradient accumulation: the batch is split into this many microbatches.
      eval_every: run the held-out eval mixture every N steps (0: never).
      initial_checkpoint_path: INITIAL_CHECKPOINT_PATH: params to fine-tune from.
      prng_impl: JAX PRNG implementation for init and dropout.
      vocabulary: VOCABULARY: ``byte``, ``t5`` or a SentencePiece ``.model`` path; the tasks are
        registered with it (``vocab.get_vocabulary``, passed to the catalog).
      resume_overrides: fields this launch deliberately changes on resume (e.g.
        ``"optimizer.learning_rate"``); see ``run_dir.OVERRIDABLE_ON_RESUME``.
      profile_steps: ``"N:M"`` writes a JAX profiler trace of steps N..M (1-based, inclusive)
        into ``RunDir.profile_dir()`` (process 0 only); None: no trace.
    """

    model_dir: str
    mixture_or_task_name: str
    task_feature_lengths: Mapping[str, int]
    train_steps: int
    batch_size: int = 32
    model: ModelConfig = dataclasses.field(default_factory=lambda: models.default_config())
    optimizer: optim.OptimizerConfig = dataclasses.field(default_factory=optim.OptimizerConfig)
    mesh: partitioning.MeshConfig = dataclasses.field(default_factory=partitioning.MeshConfig)
    pack: bool = True
    seed: int = 0
    z_loss: float = 1e-4
    label_smoothing: float = 0.0
    loss_normalizing_factor: float | None = None
    microbatches: int = 1
    save_every: int = 1000
    keep_checkpoints: int = 3
    async_checkpoint: bool = True
    log_every: int = 10
    eval_every: int = 0
    eval_mixture: str | None = None
    eval_batch_size: int = 32
    initial_checkpoint_path: str | None = None
    prng_impl: str = "threefry2x32"
    progress_bar: bool = True
    vocabulary: str = "byte"
    resume_overrides: tuple[str, ...] = ()
    profile_steps: str | None = None

    def __post_init__(self):
        def bad(field: str, fix: str) -> ValueError:
            return ValueError(f"TrainConfig.{field}={getattr(self, field)!r} is invalid; {fix}")

        for name in ("train_steps", "batch_size", "microbatches", "save_every", "log_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise bad(name, "use a positive integer")
        if self.batch_size % self.microbatches:
            raise bad("microbatches", f"it must divide batch_size={self.batch_size}")
        lengths = dict(self.task_feature_lengths)
        if set(lengths) != {"inputs", "targets"} or min(lengths.values()) < 1:
            raise bad("task_feature_lengths", 'give {"inputs": N, "targets": M} with N, M >= 1')
        if self.loss_normalizing_factor is not None and self.loss_normalizing_factor <= 0:
            raise bad("loss_normalizing_factor", "use None (per token) or a positive number")
        if self.eval_every < 0:
            raise bad("eval_every", "use 0 (no periodic eval) or a positive step interval")
        if isinstance(self.resume_overrides, str):  # "a,b" from the command line
            names = tuple(n.strip() for n in self.resume_overrides.split(",") if n.strip())
            object.__setattr__(self, "resume_overrides", names)
        if self.profile_steps is not None and parse_profile_steps(self.profile_steps) is None:
            raise bad("profile_steps", 'give "N:M" with 1 <= N <= M, e.g. "10:12"')

    @property
    def profile_range(self) -> tuple[int, int] | None:
        """(first, last) step of the profiler trace, or None when not profiling."""
        return None if self.profile_steps is None else parse_profile_steps(self.profile_steps)


def parse_profile_steps(text: object) -> tuple[int, int] | None:
    """``"N:M"`` -> (N, M) when 1 <= N <= M; None for anything else."""
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text) if isinstance(text, str) else None
    if m is None:
        return None
    first, last = int(m.group(1)), int(m.group(2))
    return (first, last) if 1 <= first <= last else None


# ---------------------------------------------------------------------------------------------
# Peak FLOP/s for MFU.

PEAK_TFLOPS = {  # dense bf16 per chip
    "TPU v4": 275.0,
    "TPU v5 lite": 197.0,
    "TPU v5": 459.0,
    "TPU v6 lite": 918.0,
    "NVIDIA H100 80GB HBM3": 989.0,
    "NVIDIA H200": 989.0,
    "NVIDIA A100-SXM4-80GB": 312.0,
    "NVIDIA A100-SXM4-40GB": 312.0,
}


@functools.cache
def measured_cpu_peak_flops(n: int = 1024, repeats: int = 5) -> float:
    """FLOP/s of a large f32 matmul through XLA on this host (CPU has no published peak)."""
    x = jnp.ones((n, n), jnp.float32, device=jax.local_devices(backend="cpu")[0])
    matmul = jax.jit(lambda a: a @ a)
    matmul(x).block_until_ready()
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        matmul(x).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def peak_flops_total() -> tuple[float, str]:
    """Peak FLOP/s of all devices in the job, and where the number comes from."""
    kind = jax.devices()[0].device_kind
    if jax.devices()[0].platform == "cpu":
        # Virtual CPU devices share the host's cores: the host is one "chip" per process.
        return measured_cpu_peak_flops() * jax.process_count(), "measured CPU matmul peak"
    for name, tflops in PEAK_TFLOPS.items():
        if kind.startswith(name) or kind == name:
            return tflops * 1e12 * jax.device_count(), f"{kind} bf16 peak"
    return math.nan, f"unknown peak for {kind!r}"


# ---------------------------------------------------------------------------------------------
# The update step.


def _split_microbatches(batch: dict[str, jax.Array], m: int) -> dict[str, jax.Array]:
    # Row i goes to microbatch i % m, so every microbatch spans all data-parallel devices.
    return {k: v.reshape(v.shape[0] // m, m, *v.shape[1:]).swapaxes(0, 1) for k, v in batch.items()}


def make_train_step(
    model: nn.Module, tx: optax.GradientTransformation, cfg: TrainConfig, schedule
) -> Callable:
    """``(state, batch) -> (state, metrics)``, to be jitted with shardings and donation."""
    dropout = getattr(cfg.model, "dropout_rate", 0.0) > 0
    budget = models.logit_row_budget(cfg.model, cfg.task_feature_lengths)

    def loss_terms(logits, targets, weights):
        loss_sum, z_sum, weight_sum = losses.cross_entropy_with_z_loss(
            logits, targets, weights, cfg.z_loss, cfg.label_smoothing
        )
        correct, _ = losses.token_accuracy(logits, targets, weights)
        return loss_sum, {"z_loss": z_sum, "weights": weight_sum, "correct": correct}

    def loss_fn(params, batch, rng):
        inputs = {k: v for k, v in batch.items() if k != "decoder_loss_weights"}
        targets, weights = batch["decoder_target_tokens"], batch["decoder_loss_weights"]
        apply = functools.partial(
            model.apply, {"params": params}, **inputs, enable_dropout=dropout, rngs={"dropout": rng}
        )
        if budget is None:
            return loss_terms(apply(), targets, weights)
        # Logits only where the loss is (a prefix-LM's targets): the same loss terms without
        # the output layer's products, softmax and their gradients at the input positions.
        # Unpacked, a row holds one example whose targets seqio trimmed to the budget. Packed,
        # a row may weigh more positions: such a batch takes the logits everywhere instead,
        # in a branch of the same program (both share the model's forward pass; the branch
        # costs memory for its full-size logits).
        hidden = apply(return_hidden=True)
        rows, fits = losses.loss_rows(weights, budget)

        def at_rows():
            def take(a):
                return jnp.take_along_axis(a, rows, axis=1)

            picked = jnp.take_along_axis(hidden, rows[..., None], axis=1)
            logits = models.head_logits(cfg.model, params, picked)
            return loss_terms(logits, take(targets), take(weights))  # 0 past the weighted

        def everywhere():
            return loss_terms(models.head_logits(cfg.model, params, hidden), targets, weights)

        return jax.lax.cond(fits, at_rows, everywhere) if cfg.pack else at_rows()

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def train_step(state, batch):
        params = state["params"]
        rng = jax.random.fold_in(jax.random.key(cfg.seed, impl=cfg.prng_impl), state["step"])
        if cfg.microbatches == 1:
            (loss_sum, aux), grads = grad_fn(params, batch, rng)
        else:

            def accumulate(carry, mb):
                i, acc = carry
                (loss, aux_i), g = grad_fn(params, mb, jax.random.fold_in(rng, i))
                acc = jax.tree.map(jnp.add, acc, (loss, aux_i, g))
                return (i + 1, acc), None

            zeros = jax.tree.map(jnp.zeros_like, jax.eval_shape(grad_fn, params, batch, rng))
            zeros = (zeros[0][0], zeros[0][1], zeros[1])
            (_, (loss_sum, aux, grads)), _ = jax.lax.scan(
                accumulate, (0, zeros), _split_microbatches(batch, cfg.microbatches)
            )
        # Grads of the summed loss, normalized once over the whole (accumulated) batch.
        denom = (
            aux["weights"] if cfg.loss_normalizing_factor is None else cfg.loss_normalizing_factor
        )
        denom = jnp.maximum(denom, 1.0)
        grads = jax.tree.map(lambda g: g / denom, grads)
        updates, opt_state = tx.update(grads, state["opt_state"], params)
        new_state = {
            "step": state["step"] + 1,
            "params": optax.apply_updates(params, updates),
            "opt_state": opt_state,
        }
        metrics = {
            "loss": loss_sum / denom,
            "z_loss": aux["z_loss"] / denom,
            "accuracy": aux["correct"] / jnp.maximum(aux["weights"], 1.0),
            "target_tokens": aux["weights"],
            "grad_norm": optax.tree.norm(grads),
            "learning_rate": schedule(state["step"]),
        }
        return new_state, metrics

    return train_step


def build_state_shardings(
    model: nn.Module,
    tx: optax.GradientTransformation,
    cfg: TrainConfig,
    layout: partitioning.Layout,
) -> tuple[dict, dict, dict, jax.Array]:
    """Abstract train state (shapes, dtypes, shardings), its shardings, the init batch and rng;
    nothing is allocated."""
    dummy = models.dummy_batch(cfg.model, cfg.task_feature_lengths, 1)
    rng = jax.random.key(cfg.seed, impl=cfg.prng_impl)
    mesh = layout.mesh
    with layout.context():
        boxed = jax.eval_shape(lambda r: model.init(r, **dummy)["params"], rng)
    param_sh = layout.param_shardings(boxed)
    abstract_params = nn.unbox(boxed)
    abstract_opt = jax.eval_shape(tx.init, abstract_params)
    opt_sh = partitioning.opt_state_shardings(
        abstract_opt, abstract_params, param_sh, mesh, optimizer=tx
    )
    shardings = {"step": partitioning.replicated(mesh), "params": param_sh, "opt_state": opt_sh}
    abstract = {
        "step": jax.ShapeDtypeStruct((), jnp.int32),
        "params": abstract_params,
        "opt_state": abstract_opt,
    }
    abstract = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings
    )
    return abstract, shardings, dummy, rng
