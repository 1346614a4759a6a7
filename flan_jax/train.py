"""The train loop: one function that reads top to bottom.

    mesh -> data -> model + optimizer -> params born sharded -> update step -> checkpoint
    (restore or initial) -> loop (metrics, NaN guard, saves, periodic eval)

Everything is configured by the frozen ``TrainConfig`` (gin binds it at the entry layer; this
module does not import gin). Batches are host-local numpy arrays assembled into global arrays
sharded over ``("data", "fsdp")``; parameters and optimizer state follow the logical-axis rules.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from flan_jax import checkpoints, input_pipeline, models, optim, partitioning, train_step, vocab
from flan_jax import run_dir as run_dir_lib

log = logging.getLogger("flan_jax.train")


# The run's config and the update step live in `train_step` (no TensorFlow there); re-exported here.
TrainConfig = train_step.TrainConfig
TrainingDiverged = train_step.TrainingDiverged

# What the CLI exits with when train() stopped on SIGTERM/SIGINT after saving a checkpoint:
# sysexits' EX_TEMPFAIL ("try again later"). Not 0, so `train && eval` chains and schedulers do
# not take a preempted run for a finished one; not 143/130, which mean "killed, nothing saved".
PREEMPTED_EXIT_CODE = 75


# ---------------------------------------------------------------------------------------------
# The loop.


def train(
    cfg: TrainConfig,
    *,
    devices: Sequence[jax.Device] | None = None,
    layout: partitioning.Layout | None = None,
    stop_after: int | None = None,
    batch_hook: Callable[[int, dict[str, np.ndarray]], None] | None = None,
    operative_config: str | None = None,
) -> dict[str, Any]:
    """Trains (or resumes) up to ``cfg.train_steps``; returns the last logged metrics.

    ``layout`` is the job's mesh and rules (default: built from ``cfg.mesh`` over ``devices``,
    all devices when None). ``stop_after`` ends this invocation after that many steps,
    checkpointing first. SIGTERM or SIGINT during the loop does the same at the end of the
    current step (the same step on every process), logs one line and returns
    ``{"step": N, "preempted": True}``; the CLI then exits with `PREEMPTED_EXIT_CODE`, and the
    same command resumes bit-exactly. ``batch_hook(step, host_batch)``
    sees every batch consumed (for inspection/tests). ``operative_config`` (the gin text the
    entry layer parsed) is kept in MODEL_DIR beside earlier launches' configs.

    MODEL_DIR is a contract (see `flan_jax.run_dir`): nothing is written into it before the
    inputs are checked, a resume must train on what the run's record says, and a lock keeps a
    second trainer out.
    """
    run_dir = run_dir_lib.RunDir(cfg.model_dir)
    try:
        with _StopSignals() as stop:  # the loop arms it; leaving restores the old handlers
            return _train(
                cfg, run_dir, devices, layout, stop_after, batch_hook, operative_config, stop
            )
    finally:
        run_dir.release_lock()  # only if this process holds it


def _train(
    cfg: TrainConfig,
    run_dir: run_dir_lib.RunDir,
    devices: Sequence[jax.Device] | None,
    layout: partitioning.Layout | None,
    stop_after: int | None,
    batch_hook: Callable[[int, dict[str, np.ndarray]], None] | None,
    operative_config: str | None,
    stop: _StopSignals,
) -> dict[str, Any]:
    # == The run directory: checked before anything is written ==
    run_dir.check_usable()
    from flan_jax import catalog  # the data layer, as input_pipeline uses it

    record = run_dir_lib.run_record(cfg, templates=catalog.templates_identity())
    run_dir.check_resume(record, has_checkpoints=run_dir.has_checkpoints())
    vocabulary = vocab.get_vocabulary(cfg.vocabulary)  # a bad spec fails here, in one line
    if cfg.initial_checkpoint_path:  # an imported checkpoint's recorded config must be MODEL
        from flan_jax import conversion

        conversion.check_initial_checkpoint(cfg.initial_checkpoint_path, cfg.model)

    # == Mesh ==
    partitioning.init_distributed()
    layout = layout or partitioning.Layout.build(cfg.mesh, devices)
    mesh = layout.mesh
    partitioning.check_batch_size(cfg.batch_size, mesh)
    shard_index, num_shards = partitioning.host_shard_info(mesh)
    is_host0 = jax.process_index() == 0
    log.info(
        "mesh %s over %d devices (%s)", dict(mesh.shape), mesh.size, jax.devices()[0].device_kind
    )

    # == Data ==
    _check_vocabulary(cfg, vocabulary)  # built once (above), passed to the data layer
    data = input_pipeline.TrainInput(
        cfg.mixture_or_task_name,
        cfg.task_feature_lengths,
        host_batch_size=cfg.batch_size // num_shards,
        model=cfg.model,
        pack=cfg.pack,
        seed=cfg.seed,
        vocabulary=vocabulary,
        shard_index=shard_index,
        num_shards=num_shards,
    )

    if is_host0:
        _warn_truncation(cfg, vocabulary)

    # == Inputs checked: claim MODEL_DIR (lock, run record), open the checkpoints ==
    if is_host0:
        run_dir.acquire_lock()
        for name, (before, after) in run_dir.accepted_overrides(record).items():
            log.warning(
                "resume_overrides: %s changes from %r to %r from here on", name, before, after
            )
        committed = checkpoints.committed_steps(run_dir.path)
        run_dir.write_record(record, at_step=committed[-1] if committed else None)
    ckpt = checkpoints.Checkpointer(
        run_dir.path, keep=cfg.keep_checkpoints, async_save=cfg.async_checkpoint
    )

    # == Model and optimizer ==
    model = models.build_model(cfg.model)
    schedule = optim.make_schedule(cfg.optimizer, cfg.train_steps)
    tx = optim.make_optimizer(cfg.optimizer, cfg.train_steps)

    # == Shard and init: params and optimizer state are born sharded ==
    abstract, shardings, dummy, rng = train_step.build_state_shardings(model, tx, cfg, layout)
    start = ckpt.latest_step()
    if start is not None:
        state, position = ckpt.restore(start, abstract)
        how = data.restore(
            position["input"], prefix=run_dir.input_state_prefix(start, jax.process_index())
        )
        log.info("resumed from step %d in %s (input: %s)", start, cfg.model_dir, how)
    else:
        with layout.context():
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

    if is_host0 and operative_config is not None and start < cfg.train_steps:
        # This launch trains: keep its config beside the earlier launches' (never over them).
        log.info("operative config: %s", run_dir.write_config(operative_config))

    # == The jitted update step ==
    batch_shardings = partitioning.batch_sharding(mesh)
    step_fn = train_step.make_train_step(model, tx, cfg, schedule)
    with layout.context():
        update = jax.jit(
            step_fn,
            in_shardings=(shardings, batch_shardings),
            out_shardings=(shardings, partitioning.replicated(mesh)),
            donate_argnums=(0,),
        )

    # NaN guard: a step's metrics are computed on the state *before* its update, so every step's
    # metrics are kept (device scalars) and checked before anything is logged or saved, and a
    # state is checked for finiteness itself before it is saved.
    pending: list[dict[str, jax.Array]] = []  # metrics of the steps not checked yet

    def guard(upto: int) -> dict[str, Any]:
        """Fetches the metrics of every step since the last check (one transfer), stops at the
        first non-finite one; returns the newest step's metrics."""
        fetched = jax.device_get(pending)
        pending.clear()
        for k, m in enumerate(fetched):
            bad = {name: v for name, v in m.items() if not np.isfinite(v)}
            if bad:
                at = upto - len(fetched) + k + 1
                what = ", ".join(f"{n}={v}" for n, v in {**bad, "loss": m["loss"]}.items())
                # Step at's metrics are computed on the state after step at-1: that one is bad.
                diverged(f"loss became non-finite between steps {at - 1} and {at} ({what})", at - 1)
        return fetched[-1] if fetched else {}

    def diverged(what: str, bad_from: int) -> None:
        """Stops the run, naming what went non-finite and the newest checkpoint that is truly
        good: one saved before step `bad_from`, the first bad state (a checkpoint's state is
        checked by the metrics of the step after it)."""
        trace.close(state)
        ckpt.wait()
        good = ckpt.latest_step(before=bad_from)
        bad = [s for s in ckpt.all_steps() if s >= bad_from]
        progress.close()
        ckpt.close()
        kept = (
            f"the last good checkpoint (step {good}) is kept in {cfg.model_dir}"
            if good is not None
            else f"no good checkpoint is kept in {cfg.model_dir}"
        )
        if bad:
            kept += f" (step {bad[0]}, saved just before, already diverges: do not start from it)"
        raise TrainingDiverged(f"{what}; {kept}; lower the learning rate or check the data")

    def save(at: int) -> None:
        guard(at)  # no-op right after the loop's check; covers any other caller
        if not checkpoints.all_finite(state):
            what = f"params or optimizer state became non-finite between steps {at - 1} and {at}"
            diverged(f"the {what} (step {at}'s update)", at)
        with _disk_full_is_one_line(run_dir, at, ckpt):
            position = {"input": data.save(run_dir.input_state_prefix(at, jax.process_index()))}
            ckpt.save(at, state, position, meta=_meta(cfg, at), force=True)
        # Bounded input states: those of steps orbax dropped go now, not when the run ends.
        _prune_input_states(run_dir, ckpt.live_steps())

    # == Metrics ==
    writer = _metric_writer(run_dir.train_log_dir(), is_host0)
    flops_per_row = models.train_flops_per_example(cfg.model, cfg.task_feature_lengths)
    peak, peak_source = train_step.peak_flops_total()
    log.info("MFU against %s: %.3g FLOP/s", peak_source, peak)

    # == Loop ==
    eval_suites: dict[str, Any] = {}  # periodic eval: datasets read at the first eval, then reused
    end = cfg.train_steps if stop_after is None else min(cfg.train_steps, start + stop_after)
    if start >= cfg.train_steps:
        log.info("%s already finished at step %d; nothing to train", cfg.model_dir, start)
        ckpt.close()
        return {"step": start, "finished": True}
    show_bar = cfg.progress_bar and is_host0
    progress = _progress(start, cfg.train_steps, enabled=show_bar)
    last: dict[str, Any] = {}
    window_start, window_tokens, window_t = start, 0, time.perf_counter()
    trace = _StepTrace(cfg.profile_range, run_dir.profile_dir(), enabled=is_host0)
    stop.arm(start)  # from here SIGTERM/SIGINT end the loop at a step all processes agree on
    stopping = False
    done = start
    for i in range(start, end):
        host_batch = next(data)
        if batch_hook is not None:
            batch_hook(i, host_batch)
        window_tokens += (
            sum(
                int(np.count_nonzero(host_batch[k]))
                for k in ("encoder_input_tokens", "decoder_target_tokens")
                if k in host_batch
            )
            * num_shards
        )
        batch = partitioning.host_local_to_global(host_batch, mesh)
        trace.before(i + 1, state)
        with layout.context():
            state, metrics = update(state, batch)
        done = i + 1
        trace.after(done, state)
        progress.update(1)
        stopping = stop.requested(done) and done < end  # (at `end` the run stops anyway)
        pending.append(metrics)
        if done % cfg.log_every == 0 or done == end or done % cfg.save_every == 0:
            metrics = guard(done)  # NaN guard: every step since the last check
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
            if not show_bar:  # a log line instead (other hosts, batch jobs): where each host is
                log.info(
                    "step %d/%d: loss %.4f, accuracy %.3f, %.3f s/step, %.0f tokens/s, MFU %.1f%%",
                    done,
                    cfg.train_steps,
                    last["loss"],
                    last["accuracy"],
                    step_time,
                    last["tokens_per_s"],
                    100 * last["mfu"],
                )
            window_start, window_tokens, window_t = done, 0, time.perf_counter()
        if done % cfg.save_every == 0 or done == end or stopping:
            save(done)  # waits for the save in flight, if any, before it starts
            window_t = time.perf_counter()  # keep checkpoint time out of step-time metrics
        if stopping:
            break
        if cfg.eval_every and done % cfg.eval_every == 0 and done != end:
            _periodic_eval(
                cfg, run_dir, vocabulary, model, state["params"], layout, done, writer, eval_suites
            )
            window_t = time.perf_counter()
    trace.close(state)  # a run that ended inside the traced steps
    progress.close()
    for suite in eval_suites.values():  # periodic eval's dataset readers
        suite.close()
    with _disk_full_is_one_line(run_dir, done, ckpt):
        ckpt.wait()  # async saves report a full disk here
    _prune_input_states(run_dir, ckpt.live_steps())
    ckpt.close()
    writer.flush()
    if stopping:
        log.warning(
            "preempted at step %d; checkpoint saved in %s; run the same command to resume",
            done,
            run_dir.step_dir(done),
        )
        return {"step": done, "preempted": True}
    return last


# ---------------------------------------------------------------------------------------------
# Helpers of the loop.


def _check_vocabulary(cfg: TrainConfig, vocabulary) -> None:
    import seqio

    from flan_jax import catalog, hf_vocab

    provider = catalog.get_task_or_mixture(cfg.mixture_or_task_name, vocabulary)
    task = provider.tasks[0] if isinstance(provider, seqio.Mixture) else provider
    size = task.output_features["targets"].vocabulary.vocab_size
    if cfg.model.vocab_size < size:
        raise ValueError(
            f"model vocab_size {cfg.model.vocab_size} is smaller than the task vocabulary's "
            f"{size} ({cfg.mixture_or_task_name}); use a model config with vocab_size >= {size} "
            "or the vocabulary the model was trained with (--vocab)"
        )
    # A Hugging Face tokenizer's special tokens must be the model's too (no-op for others).
    hf_vocab.check_agrees(vocabulary, cfg.model.vocab_size, hf_vocab.special_tokens_of(cfg.model))


# Warn when TASK_FEATURE_LENGTHS cut more than this share of a task's inputs or targets.
TRUNCATION_WARNING = 0.05


def _warn_truncation(cfg: TrainConfig, vocabulary) -> None:
    lengths = dict(cfg.task_feature_lengths)
    for t in input_pipeline.truncation_report(cfg.mixture_or_task_name, vocabulary, lengths):
        if max(t.inputs, t.targets) > TRUNCATION_WARNING:
            log.warning(
                "%s: TASK_FEATURE_LENGTHS %s cut the inputs of %.0f%% and the targets of %.0f%% "
                "of its first %d training examples; raise the lengths to train on whole examples",
                t.task,
                lengths,
                100 * t.inputs,
                100 * t.targets,
                t.examples,
            )


class DiskFull(run_dir_lib.RunDirError):
    """No space left while saving a checkpoint (one line naming the last complete one)."""


@contextlib.contextmanager
def _disk_full_is_one_line(run_dir, step: int, ckpt) -> Iterator[None]:
    """A full disk during a save (TensorFlow's ResourceExhaustedError for the input state,
    ENOSPC/EDQUOT from orbax) becomes one line naming the last complete checkpoint."""
    import tensorflow as tf

    try:
        yield
    except (OSError, tf.errors.ResourceExhaustedError) as e:
        full = isinstance(e, tf.errors.ResourceExhaustedError) or e.errno in (
            errno.ENOSPC,
            errno.EDQUOT,
        )
        if not full:
            raise
        try:
            last = ckpt.latest_step()
        except Exception:  # the disk is full: report what we can
            last = None
        raise DiskFull(
            f"no space left in MODEL_DIR {run_dir} while saving step {step}; the last complete "
            f"checkpoint is {'step ' + str(last) if last is not None else 'none'}; free space "
            "and run the same command to resume"
        ) from None


def _meta(cfg: TrainConfig, step: int) -> dict:
    return {
        "step": step,
        "mixture_or_task_name": cfg.mixture_or_task_name,
        "task_feature_lengths": dict(cfg.task_feature_lengths),
        "model": models.describe(cfg.model),
    }


def _prune_input_states(run_dir: run_dir_lib.RunDir, kept_steps: list[int]) -> None:
    """Removes the saved iterator states of steps whose checkpoint is gone (orbax's retention,
    a save that never committed). Called at every save, so even a crashed run holds at most
    keep_checkpoints + 1 (the save in flight) of them. Process 0 only: all hosts' states live
    in one shared directory."""
    if jax.process_index() != 0:
        return
    for step in run_dir.input_state_steps():
        if step not in kept_steps:
            run_dir.input_state_dir(step).rmtree(missing_ok=True)


class _StepTrace:
    """A JAX profiler trace of the steps ``first..last`` (1-based, inclusive) into `log_dir`,
    on process 0 only. A resume that starts inside the range traces the rest of it."""

    def __init__(self, steps: tuple[int, int] | None, log_dir: str, enabled: bool) -> None:
        self.first, self.last = steps or (0, -1)
        self.log_dir = log_dir
        self.enabled = enabled and steps is not None
        self.active = False

    def before(self, step: int, state: Any) -> None:
        """Called before step `step`'s update is dispatched."""
        if self.enabled and not self.active and self.first <= step <= self.last:
            jax.block_until_ready(state)  # earlier steps' work stays out of the trace
            jax.profiler.start_trace(self.log_dir, create_perfetto_trace=True)
            self.active = True

    def after(self, step: int, state: Any) -> None:
        """Called after step `step`'s update is dispatched."""
        if self.active and step >= self.last:
            self.close(state)

    def close(self, state: Any) -> None:
        if not self.active:
            return
        jax.block_until_ready(state)  # the traced steps' device work ends inside the trace
        jax.profiler.stop_trace()
        self.active, self.enabled = False, False
        log.info("profiler trace of steps %d..%d in %s", self.first, self.last, self.log_dir)


class _NullProgress:
    def update(self, n: int) -> None: ...
    def set_postfix(self, **kw) -> None: ...
    def close(self) -> None: ...


def _progress(start: int, total: int, enabled: bool):
    if not enabled:
        return _NullProgress()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc="train", unit="step", dynamic_ncols=True)


def _metric_writer(log_dir: str, is_host0: bool):
    from clu import metric_writers

    return metric_writers.create_default_writer(
        log_dir, just_logging=not is_host0, asynchronous=True
    )


def _periodic_eval(cfg, run_dir, vocabulary, model, params, layout, step, writer, suites) -> None:
    """Held-out eval mixture on the dev split, into MODEL_DIR/eval/step_<N> and TensorBoard.

    On the training mesh, with the training params as they are (no copy); every process
    scores its share, process 0 writes. The eval datasets are read once, into `suites`, and
    reused by every later eval of the run.
    """
    from flan_jax.evaluation import evaluator

    name = cfg.eval_mixture or _default_eval_mixture(cfg.mixture_or_task_name)
    if name is None:
        log.warning("eval_every is set but %s has no eval mixture", cfg.mixture_or_task_name)
        return
    if name not in suites:
        suites[name] = evaluator.EvalSuite(
            model, name, cfg.task_feature_lengths, ("validation",), vocabulary=vocabulary
        )
    results = suites[name].evaluate(
        model, params, layout, batch_size=cfg.eval_batch_size, out_dir=run_dir.eval_dir(step)
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


# ---------------------------------------------------------------------------------------------
# Preemption: SIGTERM (what a Cloud TPU VM gets before preemption or maintenance) or SIGINT ends
# the loop at a step every process agrees on, with a checkpoint there, like `stop_after`.


class _StopSignals:
    """SIGTERM/SIGINT handlers for one `train()` call: they ask the loop to stop, never raise.

    ``arm(start)``, at the loop, installs them (main thread only; before it, during setup, a
    signal ends the process as it always did: nothing has been trained since the checkpoint);
    leaving the ``with`` block puts the previous handlers back. ``requested(step)`` is asked
    after every step and answers the same on every process:

    * a job joined through ``jax.distributed`` uses JAX's preemption service. Its C++ notifier
      owns SIGTERM from ``jax.distributed.initialize`` on (Python cannot hand it back once
      replaced, so we leave SIGTERM alone and forward SIGINT into it), tells every process, and
      ``reached_preemption_sync_point`` turns True on all of them at the fastest one's step + 1.
      The per-step check is a C++ mutex, no collective (see `tests/test_preemption.py`).
    * a single process needs no agreement: the handlers set a flag.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None  # the first signal this process received
        self._start = 0
        self._jax_sync = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        self._previous.clear()

    def arm(self, start: int) -> None:
        self._start = start
        self._jax_sync = _has_preemption_service()
        if not self._jax_sync and jax.process_count() > 1:
            log.warning(
                "jax_enable_preemption_service is off: SIGTERM/SIGINT end this multi-process job "
                "at once, without a checkpoint"
            )
            return
        if threading.current_thread() is not threading.main_thread():
            return  # Python only lets the main thread install handlers
        for signum in (signal.SIGINT,) if self._jax_sync else (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)

    def requested(self, step: int) -> bool:
        """Whether the loop stops after `step` (asked once per step, in order)."""
        if self._jax_sync:
            # Counted from this call's first step, not the run's: a notice that came during
            # setup (restore, compile) syncs at counter 0, so the first step stops; absolute
            # steps of a resumed run would never meet that sync point. orbax asks the same sync
            # point with absolute steps in `should_save`, which our forced saves never call.
            return multihost_utils.reached_preemption_sync_point(step - self._start)
        return self.signal_name is not None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal_name is not None:
            # A second signal changes nothing: the step ends and the checkpoint is saved whole.
            # (os.write: print could re-enter a write the signal interrupted.)
            os.write(2, b"flan-jax: already stopping; saving the checkpoint (kill -9 skips it)\n")
            return
        self.signal_name = signal.Signals(signum).name
        if self._jax_sync:
            os.kill(os.getpid(), signal.SIGTERM)  # into JAX's notifier, which tells every process


def _has_preemption_service() -> bool:
    """Whether this process joined a job whose preemption service (SIGTERM notifier) runs."""
    if not jax.distributed.is_initialized():
        return False
    try:
        multihost_utils.reached_preemption_sync_point(0)  # counter 0: before the first step
    except RuntimeError:  # jax_enable_preemption_service=False
        return False
    return True
