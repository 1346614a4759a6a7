"""Gin-configured jobs: train, eval, infer, and smoke (the main job on the demo collection)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import seqio

from flan_jax import naming, partitioning, run_dir, train, vocab
from flan_jax.cli.common import UserError, gin_config, setup_logging
from flan_jax.evaluation import jobs


def cmd_train(args: argparse.Namespace) -> None:
    """`flan-jax train --gin_file=F --gin.MODEL_DIR=...`: trains or resumes a run."""
    if args.profile_steps is not None:
        # A gin binding like any other, so TrainConfig checks it (one line if malformed).
        args.extra = [*args.extra, f"--gin.TrainConfig.profile_steps={args.profile_steps!r}"]
    gin_entry = gin_config(args)
    cfg = gin_entry.build_train_config()
    setup_logging()
    # train() keeps the operative config in MODEL_DIR once its checks pass (never before).
    metrics = train.train(cfg, operative_config=gin_entry.operative_config())
    if metrics.get("preempted"):
        raise SystemExit(train.PREEMPTED_EXIT_CODE)  # train() logged the one line
    print(f"[train] done: {metrics}")


# ---------------------------------------------------------------------------------------------
# eval / infer


def print_report(
    results: Mapping[str, Any], heldout: Sequence[str], vocabulary: seqio.Vocabulary
) -> None:
    """The FLAN table (mean over templates, best-dev template, chance) of an evaluation."""
    summary = results["summary"]
    if summary is None:
        print("[eval] no test split evaluated: no summary (per-task metrics below)")
        for split, tasks in results["metrics"].items():
            for task, metrics in tasks.items():
                print(f"  {split:<10} {task:<40} {metrics}")
        return
    names = jobs.eval_names_for_summary(results)
    chance = jobs.chance_levels(names, vocabulary)
    print(jobs.format_summary(summary, chance, heldout))
    print(
        "(accuracy %, mean over zero-shot templates; best-dev = the template best on "
        "validation, reported on test; chance = uniform choice among the options)"
    )


def cmd_eval(args: argparse.Namespace) -> None:
    """`flan-jax eval --gin_file=F --gin.CHECKPOINT_PATH=...`: the FLAN report of a checkpoint;
    `flan-jax eval --gin_file=F --watch MODEL_DIR`: every checkpoint of a run as it appears."""
    gin_entry = gin_config(args)
    if args.watch is not None:
        cmd_watch(args, gin_entry)
        return
    cfg = gin_entry.build_eval_config()
    if args.include_heldin:
        cfg = dataclasses.replace(cfg, include_heldin=True)
    setup_logging()
    results = jobs.evaluate(cfg)
    heldout = naming.parse_name(cfg.mixture_or_task_name).heldout
    print_report(results, heldout, vocab.get_vocabulary(cfg.vocabulary))
    print(
        f"[eval] reports in {results['out_dir']} (results.json, results.md, PNG per cluster, "
        "examples/)"
    )


def cmd_watch(args: argparse.Namespace, gin_entry: Any) -> None:
    """`flan-jax eval --watch MODEL_DIR`: follows a training run to its final step."""
    from flan_jax.evaluation import watch

    if args.poll_seconds <= 0:
        raise UserError(f"--poll_seconds {args.poll_seconds} must be > 0 (e.g. 60)")
    cfg = gin_entry.build_config(jobs.EvalConfig)
    if cfg.checkpoint_path is not None:
        raise UserError(
            f"--watch {args.watch} and CHECKPOINT_PATH={cfg.checkpoint_path} both given; --watch "
            "evaluates every checkpoint of the run, so drop --gin.CHECKPOINT_PATH"
        )
    if args.include_heldin:
        cfg = dataclasses.replace(cfg, include_heldin=True)
    # Before logging starts: one line if it is not a run, or not read the way it was trained.
    watch.check_config(cfg, watch.check_model_dir(args.watch))
    setup_logging()

    def report(step: int, results: Mapping[str, Any]) -> None:
        scores = results["scores"]
        split = "test" if "test" in scores else next(iter(scores))
        table = ", ".join(f"{c} {v:.1f}" for c, v in scores[split].items())
        print(f"[eval] step {step} ({split}): {table} -> {results['out_dir']}", flush=True)

    done = watch.watch(cfg, args.watch, poll_seconds=args.poll_seconds, on_step=report)
    print(
        f"[eval] watched {args.watch} to its final step {done['final']}: evaluated steps "
        f"{done['evaluated']}, already evaluated {done['skipped']}"
    )


def cmd_infer(args: argparse.Namespace) -> None:
    """`flan-jax infer ... --prompt TEXT [--options A B]` or `--input IN.jsonl --output OUT`."""
    if bool(args.prompt) == bool(args.input):
        raise UserError("give either --prompt TEXT or --input PROMPTS.jsonl")
    if args.input and not args.output:
        raise UserError("--input needs --output OUT.jsonl")
    if args.output and os.path.exists(args.output):
        raise UserError(f"{args.output} exists; choose a new output path (nothing overwritten)")
    gin_entry = gin_config(args)
    cfg = gin_entry.build_eval_config()
    if args.prompt:
        records = [{"prompt": args.prompt, **({"options": args.options} if args.options else {})}]
        jobs.check_prompt(records[0], "--prompt/--options")
    else:
        records = jobs.read_jsonl(args.input)
    setup_logging()
    outputs = jobs.infer(cfg, records)
    if args.output:
        tmp = args.output + ".tmp"
        with open(tmp, "w") as f:
            for out in outputs:
                f.write(json.dumps(out) + "\n")
        os.replace(tmp, args.output)  # never leave a half-written output file
        print(f"[infer] wrote {len(outputs)} answers to {args.output}")
    else:
        for out in outputs:
            print(json.dumps(out, indent=2))


# ---------------------------------------------------------------------------------------------
# smoke: the main job on the embedded default


def cmd_smoke(args: argparse.Namespace) -> None:
    """Instruction-tunes the tiny T5 on the demo collection, evaluates, prints the FLAN table.

    The run is `experiments/demo_smoke.gin` with this command's flags bound as macros (any
    ``--gin.X=`` flag still wins); train and eval share one layout. A finished run and its
    evaluation are reused, never overwritten.
    """
    # Another held-out cluster is another run: it gets its own MODEL_DIR by default.
    default_dir = "runs/demo_smoke" + ("" if args.heldout == "nli" else f"_{args.heldout}")
    macros: dict[str, Any] = {
        "MODEL_DIR": args.model_dir or default_dir,
        "MIXTURE_OR_TASK_NAME": naming.mixture_name("demo", (args.heldout,)),
    }
    if args.steps:
        macros["TRAIN_STEPS"] = args.steps
    gin_entry = gin_config(args, files=("experiments/demo_smoke.gin",), macros=macros)
    cfg = gin_entry.build_train_config()
    setup_logging()
    layout = partitioning.Layout.build(cfg.mesh)
    vocabulary = vocab.get_vocabulary(cfg.vocabulary)
    print(
        f"[smoke] 1/3 instruction-tuning tiny T5 on {cfg.mixture_or_task_name} "
        f"({cfg.train_steps} steps, mesh {cfg.mesh.describe()}) -> {cfg.model_dir}"
    )
    metrics = train.train(cfg, layout=layout, operative_config=gin_entry.operative_config())
    if metrics.get("preempted"):
        raise SystemExit(train.PREEMPTED_EXIT_CODE)  # no eval of a half-trained run
    if metrics.get("finished"):
        print(
            f"[smoke] reusing the finished run in {cfg.model_dir} (step {metrics['step']}); "
            "delete it or pass --model_dir to train anew"
        )
    path, step = jobs.resolve_checkpoint(cfg.model_dir)
    out_dir = run_dir.RunDir(cfg.model_dir).eval_dir(step)
    eval_cfg = jobs.EvalConfig(
        checkpoint_path=path,
        mixture_or_task_name=cfg.mixture_or_task_name,
        task_feature_lengths=cfg.task_feature_lengths,
        model=cfg.model,
        mesh=cfg.mesh,
        vocabulary=cfg.vocabulary,
        include_heldin=True,
        heldin_clusters=tuple(args.heldin.split(",")) if args.heldin else None,
        num_examples=args.num_examples or None,
        batch_size=args.eval_batch_size,
        output_dir=out_dir,
    )
    report = os.path.join(out_dir, "results.json")
    print(
        f"[smoke] 2/3 zero-shot evaluation of held-out '{args.heldout}' and the held-in "
        f"clusters, every template, dev + test splits -> {out_dir}"
    )
    if os.path.exists(report):
        print(f"[smoke] reusing the evaluation of step {step} ({report})")
        with open(report) as f:
            results = {
                "summary": json.load(f),
                "names": jobs.eval_names(cfg.mixture_or_task_name, vocabulary, include_heldin=True),
            }
    else:
        results = jobs.evaluate(eval_cfg, layout=layout)
    print("[smoke] 3/3 results")
    print_report(results, (args.heldout,), vocabulary)
    print(f"""
[smoke] where things are:
  report       {out_dir}/results.json, results.md, <cluster>.png
  examples     {out_dir}/examples/<split>/<task>.jsonl
  checkpoints  {cfg.model_dir}/<step>/  (resume: run the same command again)
  TensorBoard  tensorboard --logdir {cfg.model_dir}/train
  gin configs  {cfg.model_dir}/config.gin (first launch), config.<n>.gin (launch n)
  run record   {cfg.model_dir}/run.json (what a resume must match)""")
