"""`flan-jax eval --watch MODEL_DIR`: an eval job that follows a training run.

Evaluates every committed checkpoint of MODEL_DIR as it appears, oldest first, each into its
own report directory (``MODEL_DIR/eval/step_<N>``, as `flan-jax eval` writes it), and stops
once the run's final step (TRAIN_STEPS of its newest launch) is evaluated. A step whose
report directory already holds a complete evaluation of the same names and splits
(``metrics.json``, written last) is skipped, so a watcher that was preempted resumes where it
stopped. Across steps it keeps a summary in ``MODEL_DIR/eval/summary``: TensorBoard scalars
(per cluster and split), ``summary.json`` and ``heldout_vs_step.png``.

The watcher can run on the training slice or on another one (any mesh: checkpoints hold
global arrays). With several processes, process 0 looks at MODEL_DIR and tells the others
what to do next, so every process evaluates the same step at the same time; only process 0
writes. The params of one step at a time are on the devices.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax

from flan_jax import checkpoints, models, naming, partitioning, run_dir, vocab
from flan_jax.evaluation import aggregate, evaluator, jobs

log = logging.getLogger("flan_jax.evaluation.watch")

_WAIT, _STOP = -1, -2  # what process 0 tells the others besides "evaluate step N"
SUMMARY_JSON = "summary.json"
SUMMARY_PLOT = "heldout_vs_step.png"


def check_model_dir(path: str) -> run_dir.RunDir:
    """The RunDir of `path`, refused in one line unless it holds a run record (run.json)."""
    run = run_dir.RunDir(path)
    if not run.path.is_dir():
        raise run_dir.RunDirError(
            f"--watch {path}: no such directory; pass the MODEL_DIR of a training run (start "
            "the watcher once the trainer has written MODEL_DIR/run.json)"
        )
    if not run.record_path.exists():
        raise run_dir.RunDirError(
            f"--watch {path} is not a MODEL_DIR (no {run_dir.RECORD}); pass the MODEL_DIR of a "
            "training run, or evaluate one checkpoint with --gin.CHECKPOINT_PATH"
        )
    run.read_record()  # a damaged record is one line too
    return run


# Model fields the saved params do not depend on: a watcher may choose its own.
_EVAL_MAY_DIFFER = frozenset({"model.dropout_rate", "model.remat", "model.dtype"})


def check_config(cfg: jobs.EvalConfig, run: run_dir.RunDir) -> None:
    """One line unless the watcher reads the run with the run's vocabulary and model shape (as
    its run.json records them) and the model can read that vocabulary's ids.

    Evaluating with another vocabulary would score every checkpoint on misread text without
    an error; another model shape would fail on the first restore, after the wait.
    """
    record = run.read_record() or {}
    trained = record.get("config", {})
    ours = run_dir.run_record(cfg)["config"]
    for name, theirs, mine in run_dir.record_changes(
        {"config": {k: trained[k] for k in ("vocabulary", "model") if k in trained}},
        {"config": {k: ours[k] for k in ("vocabulary", "model") if k in trained}},
    ):
        if name in _EVAL_MAY_DIFFER or name == "templates":
            continue
        setting = "VOCABULARY" if name == "vocabulary" else f"MODEL's {name.split('.', 1)[1]}"
        raise run_dir.RunDirError(
            f"--watch {run.given}: {setting} {mine!r} differs from the run's {theirs!r} "
            f"({run_dir.RECORD}); evaluate with the gin files and settings the run was "
            f"trained with ({run.given}/config.gin lists them)"
        )
    jobs.check_vocabulary(cfg, vocab.get_vocabulary(cfg.vocabulary))


_STEPS_PATTERNS = (
    re.compile(r"^TrainConfig\.train_steps\s*=\s*(\d+)\s*$", re.M),
    re.compile(r"^TRAIN_STEPS\s*=\s*(\d+)\s*$", re.M),
)


def final_step(run: run_dir.RunDir) -> int | None:
    """TRAIN_STEPS of the run's newest launch (its operative config; a resume may train
    longer), else the run record's; None when neither says."""
    for path in reversed(run.config_paths()):
        text = path.read_text()
        for pattern in _STEPS_PATTERNS:
            found = pattern.search(text)
            if found:
                return int(found.group(1))
    record = run.read_record() or {}
    steps = record.get("config", {}).get("train_steps")
    return int(steps) if isinstance(steps, int) else None


def cluster_scores(
    metrics: Mapping[str, Mapping[str, Mapping[str, float]]], vocabulary: Any
) -> dict[str, dict[str, float]]:
    """Per split, per cluster: the mean over datasets of the mean over templates of the
    primary metric (FLAN's cluster score)."""
    results = evaluator.template_results(metrics, vocabulary)
    out = {}
    for split in metrics:
        summary = aggregate.aggregate(results, report_split=split)
        out[split] = {c: float(v["mean"]) for c, v in summary["clusters"].items()}
    return out


def read_summary(summary_dir: str) -> dict[int, dict[str, dict[str, float]]]:
    """The per-step cluster scores of an earlier summary.json (empty when there is none)."""
    import json

    path = os.path.join(summary_dir, SUMMARY_JSON)
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            return {int(s): v for s, v in json.load(f)["steps"].items()}
    except (json.JSONDecodeError, KeyError, ValueError):
        return {}  # rebuilt from the steps' own metrics


def write_summary(
    summary_dir: str,
    scores: Mapping[int, Mapping[str, Mapping[str, float]]],
    heldout: Sequence[str],
) -> dict[str, str]:
    """summary.json (every step's cluster scores) and a plot of each cluster's score vs step
    on the report split (`test` when evaluated, else the first split); held-out clusters drawn
    solid, held-in ones dashed."""
    import json

    import matplotlib

    matplotlib.use("Agg")  # headless
    import matplotlib.pyplot as plt

    os.makedirs(summary_dir, exist_ok=True)
    steps = sorted(scores)
    splits = list(scores[steps[0]]) if steps else []
    split = aggregate.REPORT_SPLIT if aggregate.REPORT_SPLIT in splits else splits[0]
    record = {
        "report_split": split,
        "heldout": list(heldout),
        "steps": {str(s): scores[s] for s in steps},
    }
    json_path = os.path.join(summary_dir, SUMMARY_JSON)
    run_dir.atomic_write(run_dir.as_path(json_path), json.dumps(record, indent=2, sort_keys=True))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    clusters = sorted({c for s in steps for c in scores[s][split]}, key=lambda c: c not in heldout)
    for cluster in clusters:
        xs = [s for s in steps if cluster in scores[s][split]]
        ys = [scores[s][split][cluster] for s in xs]
        held = cluster in heldout
        ax.plot(xs, ys, "-o" if held else "--.", label=cluster + (" (held out)" if held else ""))
    ax.set_xlabel("step")
    ax.set_ylabel(f"cluster score ({split})")
    ax.set_title("held-out cluster score vs step")
    ax.legend(fontsize=7)
    fig.tight_layout()
    plot_path = os.path.join(summary_dir, SUMMARY_PLOT)
    fig.savefig(plot_path, dpi=100)
    plt.close(fig)
    return {"json": json_path, "plot": plot_path}


def watch(
    cfg: jobs.EvalConfig,
    model_dir: str,
    *,
    poll_seconds: float = 60.0,
    layout: partitioning.Layout | None = None,
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Evaluates MODEL_DIR's checkpoints as they are committed, until its final step.

    `cfg` says what to evaluate (its checkpoint_path is ignored); reports go to
    ``cfg.output_dir/step_<N>`` when it is set, else ``MODEL_DIR/eval/step_<N>``.
    `on_step(step, results)` sees each evaluation. Returns the steps evaluated by this call,
    the steps skipped (already evaluated) and the final step.
    """
    run = check_model_dir(model_dir)
    check_config(cfg, run)
    partitioning.init_distributed()
    layout = layout or partitioning.Layout.build(cfg.mesh)  # a bad mesh: one line, here
    is_host0 = jax.process_index() == 0
    vocabulary = vocab.get_vocabulary(cfg.vocabulary)
    names = jobs.eval_names(
        cfg.mixture_or_task_name, vocabulary, cfg.include_heldin, cfg.heldin_clusters
    )
    heldout = naming.parse_name(cfg.mixture_or_task_name).heldout or ()

    def step_dir(step: int) -> str:
        return run.eval_dir(step, cfg.output_dir)

    summary_dir = run.eval_summary_dir(cfg.output_dir)

    def evaluated(step: int) -> dict[str, Any] | None:
        record = evaluator.read_metrics(step_dir(step))
        if record and record.get("names") == names and set(cfg.splits) <= set(record["splits"]):
            return record
        return None

    unusable: set[int] = set()  # steps gone or corrupted by the time we got to them
    scores_of: dict[int, dict] = {}  # step -> cluster scores of a complete evaluation (host 0)

    def finished(step: int) -> bool:
        if step not in scores_of:
            record = evaluated(step)  # read once per step, not at every poll
            if record is None:
                return False
            scores_of[step] = cluster_scores(record["metrics"], vocabulary)
        return True

    def next_action() -> int:
        final = final_step(run)
        steps = checkpoints.committed_steps(run.path)
        for step in steps:
            if step not in unusable and not finished(step):
                return step
        if final is not None and steps and steps[-1] >= final:
            return _STOP
        return _WAIT

    model = models.build_model(cfg.model)
    suite = evaluator.EvalSuite(
        model,
        names,
        cfg.task_feature_lengths,
        cfg.splits,
        vocabulary=vocabulary,
        num_examples=cfg.num_examples,
    )
    writer = _metric_writer(summary_dir, is_host0)
    decode = cfg.decode_config
    done: list[int] = []
    already = [s for s in checkpoints.committed_steps(run.path) if finished(s)]
    if already:
        log.info("steps already evaluated (skipped): %s", already)
    waiting = False
    try:
        while True:
            action = checkpoints.from_process_0(next_action() if is_host0 else 0)
            if action == _STOP:
                break
            if action == _WAIT:
                if not waiting:
                    waiting = True
                    log.info(
                        "waiting for the next checkpoint in %s (final step %s)",
                        run,
                        final_step(run),
                    )
                time.sleep(poll_seconds)
                continue
            waiting = False
            step = action
            path = run.step_dir(step)
            try:
                params = jobs.load_params(cfg.model, str(path), layout)
            except (FileNotFoundError, checkpoints.CheckpointCorrupted) as e:
                # Retention may delete a step before a lagging watcher reaches it.
                log.warning("skipping step %d: %s", step, str(e).splitlines()[0])
                unusable.add(step)
                continue
            log.info("evaluating step %d (%s) -> %s", step, path, step_dir(step))
            results = suite.evaluate(
                model,
                params,
                layout,
                cfg.batch_size,
                step_dir(step),
                decode_config=decode,
                normalize=cfg.length_normalize,
                bucket=cfg.bucket,
            )
            del params  # one step's params on the devices at a time
            done.append(step)
            scores = scores_of[step] = cluster_scores(results["metrics"], vocabulary)
            if is_host0:
                scalars = {
                    f"{split}/{cluster}": value
                    for split, clusters in scores.items()
                    for cluster, value in clusters.items()
                }
                writer.write_scalars(step, scalars)
                writer.flush()
                # Earlier steps from the summary so far (their checkpoints may be gone), then
                # every step evaluated here or before this watcher.
                write_summary(summary_dir, {**read_summary(summary_dir), **scores_of}, heldout)
            if on_step is not None:
                on_step(step, {**results, "scores": scores, "out_dir": step_dir(step)})
    finally:
        suite.close()
        writer.close()
    return {"evaluated": done, "skipped": already, "final": final_step(run)}


def _metric_writer(log_dir: str, is_host0: bool):
    from clu import metric_writers

    return metric_writers.create_default_writer(log_dir, just_logging=not is_host0)
