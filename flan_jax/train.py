"""The train loop: one function that reads top to bottom.

    mesh -> data -> model + optimizer -> params born sharded -> update step -> checkpoint
    (restore or initial) -> loop (metrics, NaN guard, saves, periodic eval)

Everything is configured by the frozen ``TrainConfig`` (gin binds it at the entry layer; this
module does not import gin). Batches are host-local numpy arrays assembled into global arrays
sharded over ``("data", "fsdp")``; parameters and optimizer state follow the logical-axis rules.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from flan_jax import checkpoints, input_pipeline, optim, partitioning
from flan_jax.models import ModelConfig, build_model, losses, model_kind, t5_config
from flan_jax.models.config import train_flops_per_example

log = logging.getLogger("flan_jax.train")


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
    """

    model_dir: str
    mixture_or_task_name: str
    task_feature_lengths: Mapping[str, int]
    train_steps: int
    batch_size: int = 32
    model: ModelConfig = dataclasses.field(default_factory=lambda: t5_config("tiny"))
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

    def loss_fn(params, batch, rng):
        inputs = {k: v for k, v in batch.items() if k != "decoder_loss_weights"}
        logits = model.apply(
            {"params": params}, **inputs, enable_dropout=dropout, rngs={"dropout": rng}
        )
        targets, weights = batch["decoder_target_tokens"], batch["decoder_loss_weights"]
        loss_sum, z_sum, weight_sum = losses.cross_entropy_with_z_loss(
            logits, targets, weights, cfg.z_loss, cfg.label_smoothing
        )
        correct, _ = losses.token_accuracy(logits, targets, weights)
        return loss_sum, {"z_loss": z_sum, "weights": weight_sum, "correct": correct}

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
            "grad_norm": optax.global_norm(grads),
            "learning_rate": schedule(state["step"]),
        }
        return new_state, metrics

    return train_step


def _dummy_batch(kind: str, lengths: Mapping[str, int], batch: int) -> dict[str, np.ndarray]:
    shapes = input_pipeline.model_feature_lengths(kind, lengths)
    out = {}
    if kind == "encoder_decoder":
        out["encoder_input_tokens"] = np.ones((batch, shapes["encoder_input_tokens"]), np.int32)
    length = shapes["decoder_target_tokens"]
    out["decoder_input_tokens"] = np.ones((batch, length), np.int32)
    out["decoder_target_tokens"] = np.ones((batch, length), np.int32)
    return out


def build_state_shardings(model, tx, cfg: TrainConfig, mesh, rules):
    """Abstract train state (shapes, dtypes, shardings) without allocating anything."""
    kind = model_kind(cfg.model)
    dummy = _dummy_batch(kind, cfg.task_feature_lengths, 1)
    rng = jax.random.key(cfg.seed, impl=cfg.prng_impl)
    with partitioning.with_sharding_rules(mesh, rules):
        boxed = jax.eval_shape(lambda r: model.init(r, **dummy)["params"], rng)
    param_sh = partitioning.param_shardings(boxed, mesh, rules)
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


# ---------------------------------------------------------------------------------------------
# The loop.


def train(
    cfg: TrainConfig,
    *,
    devices: Sequence[jax.Device] | None = None,
    stop_after: int | None = None,
    batch_hook: Callable[[int, dict[str, np.ndarray]], None] | None = None,
) -> dict[str, Any]:
    """Trains (or resumes) up to ``cfg.train_steps``; returns the last logged metrics.

    ``devices`` restricts the mesh to a subset of devices (default: all). ``stop_after`` ends
    this invocation after that many steps, checkpointing first (a preempted job behaves the
    same). ``batch_hook(step, host_batch)`` sees every batch consumed (for inspection/tests).
    """
    # == Mesh ==
    partitioning.init_distributed()
    mesh = partitioning.make_mesh(cfg.mesh, devices)
    rules = partitioning.logical_axis_rules(cfg.mesh.rules)
    partitioning.check_batch_size(cfg.batch_size, mesh)
    shard_index, num_shards = partitioning.host_shard_info(mesh)
    is_host0 = jax.process_index() == 0
    log.info(
        "mesh %s over %d devices (%s)", dict(mesh.shape), mesh.size, jax.devices()[0].device_kind
    )

    # == Checkpoints (fails early on an unwritable MODEL_DIR) ==
    ckpt = checkpoints.Checkpointer(
        cfg.model_dir, keep=cfg.keep_checkpoints, async_save=cfg.async_checkpoint
    )

    # == Data ==
    _check_vocabulary(cfg)
    kind = model_kind(cfg.model)
    data = input_pipeline.TrainInput(
        cfg.mixture_or_task_name,
        cfg.task_feature_lengths,
        host_batch_size=cfg.batch_size // num_shards,
        model_kind=kind,
        pack=cfg.pack,
        seed=cfg.seed,
        shard_index=shard_index,
        num_shards=num_shards,
    )

    # == Model and optimizer ==
    model = build_model(cfg.model)
    schedule = optim.make_schedule(cfg.optimizer, cfg.train_steps)
    tx = optim.make_optimizer(cfg.optimizer, cfg.train_steps)

    # == Shard and init: params and optimizer state are born sharded ==
    abstract, shardings, dummy, rng = build_state_shardings(model, tx, cfg, mesh, rules)
    start = ckpt.latest_step()
    if start is not None:
        state, position = ckpt.restore(start, abstract)
        how = data.restore(position["input"])
        log.info("resumed from step %d in %s (input: %s)", start, cfg.model_dir, how)
    else:
        with partitioning.with_sharding_rules(mesh, rules):
            if cfg.initial_checkpoint_path:
                params = checkpoints.restore_params(cfg.initial_checkpoint_path, abstract["params"])
                log.info("initialized params from %s", cfg.initial_checkpoint_path)
            else:
                init_params = jax.jit(
                    lambda r: nn.unbox(model.init(r, **dummy)["params"]),
                    out_shardings=shardings["params"],
                )
                params = init_params(rng)
            opt_state = jax.jit(tx.init, out_shardings=shardings["opt_state"])(params)
        step0 = jax.device_put(jnp.zeros((), jnp.int32), shardings["step"])
        state = {"step": step0, "params": params, "opt_state": opt_state}
        start = 0

    # == The jitted update step ==
    batch_shardings = partitioning.batch_sharding(mesh)
    step_fn = make_train_step(model, tx, cfg, schedule)
    with partitioning.with_sharding_rules(mesh, rules):
        train_step = jax.jit(
            step_fn,
            in_shardings=(shardings, batch_shardings),
            out_shardings=(shardings, partitioning.replicated(mesh)),
            donate_argnums=(0,),
        )

    def save(step: int) -> None:
        prefix = f"{cfg.model_dir}/input_state/{step}/host{jax.process_index()}"
        position = {"input": data.save(prefix)}
        ckpt.save(step, state, position, meta=_meta(cfg, step), force=True)

    # == Metrics ==
    writer = _metric_writer(cfg.model_dir, is_host0)
    lengths = input_pipeline.model_feature_lengths(kind, cfg.task_feature_lengths)
    flops_per_row = train_flops_per_example(
        cfg.model,
        cfg.task_feature_lengths["inputs"] if kind == "encoder_decoder" else 0,
        lengths["decoder_target_tokens"],
    )
    peak, peak_source = peak_flops_total()
    log.info("MFU against %s: %.3g FLOP/s", peak_source, peak)

    # == Loop ==
    end = cfg.train_steps if stop_after is None else min(cfg.train_steps, start + stop_after)
    if start >= cfg.train_steps:
        log.info("%s already finished at step %d; nothing to train", cfg.model_dir, start)
        ckpt.close()
        return {"step": start, "finished": True}
    progress = _progress(start, cfg.train_steps, enabled=cfg.progress_bar and is_host0)
    last: dict[str, Any] = {}
    last_good = start
    window_start, window_tokens, window_t = start, 0, time.perf_counter()
    for step in range(start, end):
        host_batch = next(data)
        if batch_hook is not None:
            batch_hook(step, host_batch)
        window_tokens += (
            sum(
                int(np.count_nonzero(host_batch[k]))
                for k in ("encoder_input_tokens", "decoder_target_tokens")
                if k in host_batch
            )
            * num_shards
        )
        batch = partitioning.host_local_to_global(host_batch, mesh)
        with partitioning.with_sharding_rules(mesh, rules):
            state, metrics = train_step(state, batch)
        done = step + 1
        progress.update(1)
        if done % cfg.log_every == 0 or done == end or done % cfg.save_every == 0:
            metrics = jax.device_get(metrics)
            # NaN guard: stop before the bad state can be saved; the last checkpoint stays good.
            if not all(np.isfinite(v) for v in metrics.values()):
                ckpt.wait()
                progress.close()
                ckpt.close()
                raise TrainingDiverged(
                    f"loss became non-finite between steps {last_good} and {done} "
                    f"(loss={metrics['loss']}); the last good checkpoint "
                    f"(step {ckpt.latest_step()}) is kept in {cfg.model_dir}; lower the "
                    "learning rate or check the data"
                )
            last_good = done
            elapsed = time.perf_counter() - window_t
            steps = done - window_start
            step_time = elapsed / steps
            flops = flops_per_row * cfg.batch_size * steps / elapsed
            last = {
                **{k: float(v) for k, v in metrics.items()},
                "step_time_s": step_time,
                "tokens_per_s": window_tokens / elapsed,
                "mfu": flops / peak,
                "step": done,
            }
            writer.write_scalars(done, {k: v for k, v in last.items() if k != "step"})
            progress.set_postfix(
                loss=f"{last['loss']:.3f}",
                acc=f"{last['accuracy']:.3f}",
                tok_s=f"{last['tokens_per_s']:.0f}",
                mfu=f"{last['mfu']:.1%}",
            )
            window_start, window_tokens, window_t = done, 0, time.perf_counter()
        if done % cfg.save_every == 0 or done == end:
            save(done)
            window_t = time.perf_counter()  # keep checkpoint time out of step-time metrics
        if cfg.eval_every and done % cfg.eval_every == 0 and done != end:
            _periodic_eval(cfg, model, state["params"], mesh, rules, done, writer)
            window_t = time.perf_counter()
    progress.close()
    ckpt.wait()
    _prune_input_states(cfg.model_dir, ckpt.all_steps())
    ckpt.close()
    writer.flush()
    return last


# ---------------------------------------------------------------------------------------------
# Helpers of the loop.


def _check_vocabulary(cfg: TrainConfig) -> None:
    import seqio

    from flan_jax import registry

    provider = registry.get_task_or_mixture(cfg.mixture_or_task_name)
    task = provider.tasks[0] if isinstance(provider, seqio.Mixture) else provider
    size = task.output_features["targets"].vocabulary.vocab_size
    if cfg.model.vocab_size < size:
        raise ValueError(
            f"model vocab_size {cfg.model.vocab_size} is smaller than the task vocabulary's "
            f"{size} ({cfg.mixture_or_task_name}); use a model config with vocab_size >= {size} "
            "or the vocabulary the model was trained with (--vocab)"
        )


def _meta(cfg: TrainConfig, step: int) -> dict:
    return {
        "step": step,
        "mixture_or_task_name": cfg.mixture_or_task_name,
        "task_feature_lengths": dict(cfg.task_feature_lengths),
        "model": {"kind": type(cfg.model).__name__, **dataclasses.asdict(cfg.model)},
    }


def _prune_input_states(model_dir: str, kept_steps: list[int]) -> None:
    """Removes saved iterator states whose checkpoint orbax has deleted."""
    import tensorflow as tf

    root = f"{model_dir}/input_state"
    if not tf.io.gfile.exists(root):
        return
    for name in tf.io.gfile.listdir(root):
        name = name.rstrip("/")
        if name.isdigit() and int(name) not in kept_steps:
            tf.io.gfile.rmtree(f"{root}/{name}")


class _NullProgress:
    def update(self, n: int) -> None: ...
    def set_postfix(self, **kw) -> None: ...
    def close(self) -> None: ...


def _progress(start: int, total: int, enabled: bool):
    if not enabled:
        return _NullProgress()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc="train", unit="step", dynamic_ncols=True)


def _metric_writer(model_dir: str, is_host0: bool):
    from clu import metric_writers

    return metric_writers.create_default_writer(
        f"{model_dir}/train", just_logging=not is_host0, asynchronous=True
    )


def _periodic_eval(cfg, model, params, mesh, rules, step, writer) -> None:
    """Held-out eval mixture on the dev split, into MODEL_DIR/eval/step_<N> and TensorBoard."""
    from flan_jax.evaluation import evaluator

    name = cfg.eval_mixture or _default_eval_mixture(cfg.mixture_or_task_name)
    if name is None:
        log.warning("eval_every is set but %s has no eval mixture", cfg.mixture_or_task_name)
        return
    results = evaluator.evaluate_mixture(
        model,
        params,
        mesh,
        name,
        cfg.task_feature_lengths,
        splits=("validation",),
        batch_size=cfg.eval_batch_size,
        out_dir=f"{cfg.model_dir}/eval/step_{step}",
        rules=rules,
    )
    scalars = {
        f"eval/{task}/{metric}": value
        for task, metrics in results["metrics"]["validation"].items()
        for metric, value in metrics.items()
    }
    writer.write_scalars(step, scalars)
    log.info("step %d: eval of %s on %d tasks written", step, name, len(scalars))


def _default_eval_mixture(train_name: str) -> str | None:
    """``<c>:heldout_X:train`` -> ``<c>:heldout_X:eval``."""
    from flan_jax import naming

    parsed = naming.parse_name(train_name)
    if parsed.is_mixture and parsed.heldout:
        return naming.mixture_name(parsed.collection, parsed.heldout, "eval")
    return None
