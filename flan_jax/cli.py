"""The ``flan-jax`` command: the entry layer (the only place that parses flags and gin).

Subcommands:
  list                        registered collections, clusters, datasets and mixtures
  inspect NAME                a task (raw example, rendered text, token counts) or a mixture
  train-vocab NAME OUT        a SentencePiece model trained on a task's or mixture's text
  train / eval / infer        gin-configured jobs (see ``flan_jax/gin_entry.py``)
  convert                     Hugging Face / T5X checkpoints in, Hugging Face out
  data-status / datacard      which datasets are present; the collection's data card
  smoke                       the main job on the embedded default (demo collection)
  data-status NAME            which datasets of NAME are prepared / missing / need manual download
  datacard [COLLECTION]       writes docs/<collection>_datacard.md
  preflight                   per-device memory of a train config on a target mesh (no run)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def _quiet_tf() -> None:
    """Keeps TensorFlow off accelerators (JAX owns them) and its logs short."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.set_visible_devices([], "GPU")
    tf.get_logger().setLevel("ERROR")


class UserError(Exception):
    """An input problem reported as one line (no traceback)."""


# ---------------------------------------------------------------------------------------------
# list


def cmd_list(args: argparse.Namespace) -> None:
    import seqio

    from flan_jax import registry

    names = [args.collection] if args.collection else registry.available_collections()
    for name in names:
        collection = registry.get_collection(name)
        print(
            f"collection {name}: {len(collection.clusters)} clusters, "
            f"{len(collection.specs)} datasets"
        )
        for cluster in collection.clusters:
            dropped = collection.exclusions.get(cluster, ())
            extra = f"  (holding it out also drops: {', '.join(dropped)})" if dropped else ""
            print(f"  cluster {cluster}{extra}")
            for spec in collection.datasets(cluster):
                flags = []
                if spec.has_options:
                    flags.append("options")
                turned = sum(t.turned_around for t in spec.templates)
                if turned:
                    flags.append(f"{turned} turned-around")
                print(
                    f"    {spec.name:<28} {len(spec.templates):>2} templates  "
                    f"[{', '.join(flags)}]  {spec.description}"
                )
        tasks = [t for t in seqio.TaskRegistry.names() if t.startswith(name + ":")]
        mixtures = sorted(m for m in seqio.MixtureRegistry.names() if m.startswith(name + ":"))
        print(f"  tasks: {len(tasks)} (e.g. {', '.join(sorted(tasks)[:3])}, ...)")
        print(f"  mixtures ({len(mixtures)}):")
        for m in mixtures:
            print(f"    {m}")


# ---------------------------------------------------------------------------------------------
# inspect


def _show(value) -> str:
    import numpy as np

    if isinstance(value, bytes):
        return repr(value.decode("utf-8", "replace"))
    if isinstance(value, np.ndarray) and value.dtype == object:
        return repr([v.decode("utf-8", "replace") for v in value.ravel()])
    return repr(value.tolist() if hasattr(value, "tolist") else value)


def cmd_inspect(args: argparse.Namespace) -> None:
    import seqio

    from flan_jax import naming, registry

    provider = registry.get_task_or_mixture(args.name)
    if isinstance(provider, seqio.Mixture):
        parsed = naming.parse_name(args.name)
        collection = registry.get_collection(parsed.collection)
        from flan_jax import mixing

        plan = mixing.plan_heldout(collection, parsed.heldout)
        print(f"mixture {args.name}")
        print(
            f"  held out: {', '.join(plan.heldout) or 'none'}; "
            f"excluded clusters: {', '.join(plan.excluded) or 'none'}"
        )
        total = provider.total_rate
        for task in provider.tasks:
            rate = provider.get_rate(task)
            print(f"  {task.name:<40} rate {rate:>8.0f}  ({100 * rate / total:5.1f}%)")
        return
    task = provider
    split = args.split
    if split not in task.splits:
        raise UserError(
            f"task {task.name} has no split '{split}'; it has: {', '.join(task.splits)}"
        )
    vocabulary = task.output_features["targets"].vocabulary
    if getattr(args, "mock", False):
        # Schema-true random examples of the real TFDS builder: no data needed.
        import tensorflow_datasets as tfds

        with tfds.testing.mock_data(num_examples=max(args.n, 1)):
            _show_examples(task, split, args.n, vocabulary, try_in_mem_cache=False)
        return
    _show_examples(task, split, args.n, vocabulary)


def _show_examples(task, split: str, n: int, vocabulary, try_in_mem_cache: bool = True) -> None:
    raw = task.source.get_dataset(split=split, shuffle=False).take(n)
    rendered = task.get_dataset(
        None, split=split, shuffle=False, try_in_mem_cache=try_in_mem_cache
    ).take(n)
    for i, (r, ex) in enumerate(zip(raw.as_numpy_iterator(), rendered.as_numpy_iterator())):
        print(f"=== {task.name} [{split}] example {i}")
        print("raw:")
        for k, v in r.items():
            print(f"  {k}: {_show(v)}")
        extras = {k: v for k, v in ex.items() if k in ("template", "idx", "is_correct")}
        if extras:
            print("meta: " + ", ".join(f"{k}={_show(v)}" for k, v in extras.items()))
        print("inputs:")
        print("  " + ex["inputs_pretokenized"].decode().replace("\n", "\n  "))
        print("targets:")
        print("  " + ex["targets_pretokenized"].decode().replace("\n", "\n  "))
        print(
            f"tokens: inputs {len(ex['inputs'])}, targets {len(ex['targets'])} "
            f"(vocabulary: {type(vocabulary).__name__}, EOS included)"
        )


# ---------------------------------------------------------------------------------------------
# train-vocab


def cmd_train_vocab(args: argparse.Namespace) -> None:
    import seqio

    from flan_jax import registry, vocab

    if os.path.exists(args.output + ".model") and not args.overwrite:
        raise UserError(f"{args.output}.model exists; pass --overwrite or choose another prefix")
    provider = registry.get_task_or_mixture(args.name)
    # Mixtures drop the raw text, so read their member tasks (sharing the example budget).
    tasks = provider.tasks if isinstance(provider, seqio.Mixture) else [provider]
    per_task = -(-args.max_examples // len(tasks)) if args.max_examples else None

    def texts():
        for task in tasks:
            ds = task.get_dataset(None, split=args.split, shuffle=False)
            if per_task:
                ds = ds.take(per_task)
            for ex in ds.as_numpy_iterator():
                yield ex["inputs_pretokenized"].decode()
                yield ex["targets_pretokenized"].decode()

    path = vocab.train_sentencepiece(texts(), args.output, vocab_size=args.vocab_size)
    print(f"wrote {path} (vocab size {args.vocab_size}); use it with --vocab={path}")


# ---------------------------------------------------------------------------------------------
# train (gin-configured)


def _setup_logging() -> None:
    import logging

    import absl.logging

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", force=True
    )
    # seqio warns on every uncached function source; orbax/absl chatter drowns the progress.
    absl.logging.set_verbosity(absl.logging.ERROR)
    for name in ("absl", "jax", "orbax", "tensorflow", "seqio"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _gin_config(args: argparse.Namespace):
    from flan_jax import gin_entry

    files, bindings, rest = gin_entry.split_gin_args(args.extra)
    if rest:
        raise UserError(f"unrecognized arguments: {' '.join(rest)}")
    gin_entry.parse(files, bindings)
    if not args.vocab:
        os.environ["FLAN_JAX_VOCAB"] = gin_entry.macro("VOCABULARY", "byte")
    _cpu_devices(gin_entry.macro("CPU_DEVICES"))
    _join_processes()
    return gin_entry


def _cpu_devices(n: int | None) -> None:
    """Virtual CPU devices (only affects the CPU backend; read when JAX first starts)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if n and "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()


def _join_processes() -> None:
    """Joins a multi-process job described by FLAN_JAX_COORDINATOR / _NUM_PROCESSES / _PROCESS_ID
    (set by launch/local_multiprocess.py); Cloud TPU needs nothing (auto-detected)."""
    if "FLAN_JAX_COORDINATOR" not in os.environ:
        return
    from flan_jax import partitioning

    partitioning.init_distributed(
        os.environ["FLAN_JAX_COORDINATOR"],
        int(os.environ["FLAN_JAX_NUM_PROCESSES"]),
        int(os.environ["FLAN_JAX_PROCESS_ID"]),
    )


def cmd_train(args: argparse.Namespace) -> None:
    from flan_jax import train

    gin_entry = _gin_config(args)
    cfg = gin_entry.build_train_config()
    _setup_logging()
    path = gin_entry.write_operative_config(cfg.model_dir)
    print(f"[train] operative config: {path}")
    metrics = train.train(cfg)
    print(f"[train] done: {metrics}")


# ---------------------------------------------------------------------------------------------
# eval / infer


def _print_report(results: dict, heldout) -> None:
    from flan_jax.evaluation import jobs as evaluate

    summary = results["summary"]
    if summary is None:
        print("[eval] no test split evaluated: no summary (per-task metrics below)")
        for split, tasks in results["metrics"].items():
            for task, metrics in tasks.items():
                print(f"  {split:<10} {task:<40} {metrics}")
        return
    names = evaluate.eval_names_for_summary(results)
    chance = evaluate.chance_levels(names)
    print(evaluate.format_summary(summary, chance, heldout))
    print(
        "(accuracy %, mean over zero-shot templates; best-dev = the template best on "
        "validation, reported on test; chance = uniform choice among the options)"
    )


def cmd_eval(args: argparse.Namespace) -> None:
    from flan_jax import naming
    from flan_jax.evaluation import jobs as evaluate

    gin_entry = _gin_config(args)
    cfg = gin_entry.build_eval_config()
    if args.include_heldin:
        import dataclasses

        cfg = dataclasses.replace(cfg, include_heldin=True)
    _setup_logging()
    results = evaluate.evaluate(cfg)
    parsed = naming.parse_name(cfg.mixture_or_task_name)
    _print_report(results, parsed.heldout)
    print(
        f"[eval] reports in {results['out_dir']} (results.json, results.md, PNG per cluster, "
        "examples/)"
    )


def cmd_infer(args: argparse.Namespace) -> None:
    import json

    from flan_jax import vocab
    from flan_jax.evaluation import jobs as evaluate

    if bool(args.prompt) == bool(args.input):
        raise UserError("give either --prompt TEXT or --input PROMPTS.jsonl")
    if args.input and not args.output:
        raise UserError("--input needs --output OUT.jsonl")
    if args.output and os.path.exists(args.output):
        raise UserError(f"{args.output} exists; choose a new output path (nothing overwritten)")
    gin_entry = _gin_config(args)
    cfg = gin_entry.build_eval_config()
    if args.prompt:
        records = [{"prompt": args.prompt, **({"options": args.options} if args.options else {})}]
    else:
        records = evaluate.read_jsonl(args.input)
    _setup_logging()
    outputs = evaluate.infer(cfg, records, vocab.default_vocabulary())
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


def _show_mixture(name: str, n: int = 2) -> None:
    """The mixture's members and rates, and a few rendered training examples."""
    from flan_jax import registry

    cmd_inspect(argparse.Namespace(name=name, split="train", n=0))
    for task in registry.get_task_or_mixture(name).tasks[:n]:
        for ex in task.get_dataset(None, split="train", shuffle=False).take(1).as_numpy_iterator():
            print(f"--- {task.name} (template {int(ex['template'])}), {len(ex['inputs'])} tokens")
            print(ex["inputs_pretokenized"].decode())
            print(f"=> {ex['targets_pretokenized'].decode()}")


def cmd_smoke(args: argparse.Namespace) -> None:
    import dataclasses
    import json

    from flan_jax import naming, train
    from flan_jax.evaluation import jobs as evaluate

    steps = [f"--gin.TRAIN_STEPS={args.steps}"] if args.steps else []
    args.extra = [
        "--gin_file=experiments/demo_smoke.gin",
        f'--gin.MODEL_DIR="{args.model_dir}"',
        f'--gin.MIXTURE_OR_TASK_NAME="{naming.mixture_name("demo", (args.heldout,))}"',
        *steps,
        *args.extra,
    ]
    gin_entry = _gin_config(args)
    cfg = gin_entry.build_train_config()
    _setup_logging()
    print(
        f"[smoke] 1/3 instruction-tuning tiny T5 on {cfg.mixture_or_task_name} "
        f"({cfg.train_steps} steps, mesh {cfg.mesh.describe()}) -> {cfg.model_dir}"
    )
    gin_entry.write_operative_config(cfg.model_dir)
    metrics = train.train(cfg)
    if metrics.get("finished"):
        print(
            f"[smoke] reusing the finished run in {cfg.model_dir} (step {metrics['step']}); "
            "delete it or pass --model_dir to train anew"
        )
    eval_cfg = evaluate.EvalConfig(
        checkpoint_path=cfg.model_dir,
        mixture_or_task_name=cfg.mixture_or_task_name,
        task_feature_lengths=cfg.task_feature_lengths,
        model=cfg.model,
        mesh=cfg.mesh,
        include_heldin=True,
        heldin_clusters=tuple(args.heldin.split(",")) if args.heldin else None,
        num_examples=args.num_examples or None,
        batch_size=args.eval_batch_size,
    )
    path, step = evaluate.resolve_checkpoint(cfg.model_dir)
    out_dir = os.path.join(cfg.model_dir, "eval", f"step_{step}")
    report = os.path.join(out_dir, "results.json")
    print(
        f"[smoke] 2/3 zero-shot evaluation of held-out '{args.heldout}' and the held-in "
        f"clusters, every template, dev + test splits -> {out_dir}"
    )
    if os.path.exists(report):
        print(f"[smoke] reusing the evaluation of step {step} ({report})")
        results = {
            "summary": json.load(open(report)),
            "names": evaluate.eval_names(cfg.mixture_or_task_name, include_heldin=True),
        }
    else:
        results = evaluate.evaluate(dataclasses.replace(eval_cfg, output_dir=out_dir))
    print("[smoke] 3/3 results")
    _print_report(results, (args.heldout,))
    print(f"""
[smoke] where things are:
  report       {out_dir}/results.json, results.md, <cluster>.png
  examples     {out_dir}/examples/<split>/<task>.jsonl
  checkpoints  {cfg.model_dir}/<step>/  (resume: run the same command again)
  TensorBoard  tensorboard --logdir {cfg.model_dir}/train
  gin config   {cfg.model_dir}/config.gin""")


# ---------------------------------------------------------------------------------------------
# data-status / datacard


def _datasets_of(name: str):
    """(collection, specs) for a collection, task or mixture name."""
    import seqio

    from flan_jax import naming, registry

    if ":" not in name:
        collection = registry.get_collection(name)
        return collection, list(collection.specs)
    provider = registry.get_task_or_mixture(name)
    tasks = provider.tasks if isinstance(provider, seqio.Mixture) else [provider]
    collection = registry.get_collection(naming.parse_name(name).collection)
    seen = dict.fromkeys(naming.parse_name(t.name).dataset for t in tasks)
    return collection, [collection.spec(d) for d in seen]


def cmd_data_status(args: argparse.Namespace) -> None:
    """Which datasets of a collection/task/mixture are prepared in the TFDS data dir."""
    collection, specs = _datasets_of(args.name)
    counts: dict[str, int] = {}
    manual = []
    for spec in specs:
        status_fn = getattr(spec.source, "status", None)
        status = status_fn(args.data_dir) if status_fn else "generated"
        counts[status] = counts.get(status, 0) + 1
        builder = getattr(spec.source, "builder", "(function)")
        print(f"{status:<9} {spec.cluster:<34} {spec.name:<34} {builder}")
        if status == "manual":
            manual.append(f"  {spec.name}: {spec.source.manual_download}")
    where = args.data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    print(f"{args.name}: {len(specs)} datasets in data_dir {where}: {summary}")
    if manual:
        print("manual downloads needed:")
        print("\n".join(manual))


def datacard_markdown(name: str) -> str:
    """The markdown data card of a collection: one row per dataset."""
    import importlib

    from flan_jax import mixing, registry

    collection = registry.get_collection(name)
    sizes = getattr(importlib.import_module(f"flan_jax.tasks.{name}"), "TRAIN_SIZES", {})
    lines = [
        f"# Data card: `{name}`",
        "",
        "Generated by `flan-jax datacard "
        + name
        + "` from the registered task specs (do not edit by hand).",
        "",
        f"{len(collection.clusters)} clusters, {len(collection.specs)} datasets. Splits follow "
        "FLAN: train capped at 30,000; where test labels are hidden the last 200 train examples "
        "(COPA, WSC: 50) are the dev split and the official validation split is the test split; "
        "otherwise dev = `validation[:200]`. Mixing rate = min(train examples, 3,000). "
        "Train size: the official train split (public statistics) and the examples used "
        "(after the dev hold-out and the cap); without a known size, the cap rule.",
        "",
        "| cluster | dataset | builder | templates | turned-around | options | metric "
        "| train size (official -> used) | splits (train / dev / test) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for spec in collection.specs:
        turned = sum(t.turned_around for t in spec.templates)
        metric = ", ".join(m.__name__ for m in spec.metrics)
        if spec.has_options:
            rank = getattr(spec, "rank_metrics", ())
            metric += f" (+ {', '.join(m.__name__ for m in rank) or 'rank_classification'})"
        n = sizes.get(spec.name)
        train = spec.splits.get("train", "")
        if n is None:
            size = "unknown offline -> min(n, 30,000)"
        else:
            held = 0
            if "[:-" in train:
                held = int(train.split("[:-")[1].rstrip("]"))
            used = min(n - held, mixing.FLAN_CAP)
            size = f"{n:,} -> {used:,} (rate {min(used, mixing.FLAN_MAX_RATE):,})"
        builder = getattr(spec.source, "builder", "(function)")
        manual = " (manual download)" if getattr(spec.source, "manual_download", None) else ""
        splits = " / ".join(f"`{spec.splits.get(s, '-')}`" for s in ("train", "validation", "test"))
        lines.append(
            f"| {spec.cluster} | {spec.name} | `{builder}`{manual} | {len(spec.templates)} "
            f"| {turned} | {'yes' if spec.has_options else 'no'} | {metric} | {size} | {splits} |"
        )
    rules = collection.exclusions
    if rules:
        lines += ["", "Held-out exclusions (holding out the cluster also drops):", ""]
        lines += [f"- {k}: {', '.join(v)}" for k, v in rules.items()]
    if collection.overlaps:
        lines += ["", "Overlap removal (training examples dropped when the partner is held out):"]
        lines += [""] + [f"- {r.dataset_a} <-> {r.dataset_b}: {r.why}" for r in collection.overlaps]
    if collection.cluster_order:
        lines += ["", "Cluster-count ablation order: " + ", ".join(collection.cluster_order)]
    return "\n".join(lines) + "\n"


def cmd_datacard(args: argparse.Namespace) -> None:
    text = datacard_markdown(args.collection)
    output = args.output or f"docs/{args.collection}_datacard.md"
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {output} ({text.count(chr(10))} lines)")


# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flan-jax", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--vocab",
        default=None,
        help="vocabulary tasks register with: byte (default), t5, or a SentencePiece .model path",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="registered collections, clusters, datasets, mixtures")
    p.add_argument("collection", nargs="?", help="only this collection")
    p.set_defaults(fn=cmd_list)

    p = sub.add_parser("inspect", help="show a task's examples or a mixture's members")
    p.add_argument("name")
    p.add_argument("--split", default="train")
    p.add_argument("--n", type=int, default=3)
    p.add_argument(
        "--mock", action="store_true", help="TFDS tasks: random schema-true examples, no data"
    )
    p.set_defaults(fn=cmd_inspect)

    p = sub.add_parser("train-vocab", help="train a SentencePiece model on task text")
    p.add_argument("name", help="task or mixture")
    p.add_argument("output", help="output prefix (writes PREFIX.model and PREFIX.vocab)")
    p.add_argument("--vocab_size", type=int, default=8000)
    p.add_argument("--split", default="train")
    p.add_argument("--max_examples", type=int, default=100_000)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(fn=cmd_train_vocab)

    p = sub.add_parser(
        "train",
        help='train a model: --gin_file=F ... --gin.MODEL_DIR=\\"DIR\\" --gin.TRAIN_STEPS=N',
    )
    p.set_defaults(fn=cmd_train, accepts_gin=True)

    p = sub.add_parser("eval", help="evaluate a checkpoint: --gin_file=F --gin.CHECKPOINT_PATH=...")
    p.add_argument("--include_heldin", action="store_true", help="also evaluate held-in clusters")
    p.set_defaults(fn=cmd_eval, accepts_gin=True)

    p = sub.add_parser("infer", help="answer prompts with a checkpoint (--prompt or --input)")
    p.add_argument("--prompt", help="one instruction")
    p.add_argument("--options", nargs="+", help="answer options to score for --prompt")
    p.add_argument("--input", help='JSONL of {"prompt": ..., "options": [...]} records')
    p.add_argument("--output", help="JSONL of answers (never overwritten)")
    p.set_defaults(fn=cmd_infer, accepts_gin=True)

    p = sub.add_parser("smoke", help="the main job on the embedded demo collection")
    p.add_argument("--heldout", default="nli")
    p.add_argument("--model_dir", default="runs/demo_smoke")
    p.add_argument("--steps", type=int, default=None, help="override TRAIN_STEPS")
    p.add_argument(
        "--num_examples",
        type=int,
        default=120,
        help="cap on eval examples (rows for rank tasks) per task and split; 0: no cap",
    )
    p.add_argument("--eval_batch_size", type=int, default=64)
    p.add_argument("--heldin", default=None, help="evaluate only these held-in clusters (a,b)")
    p.set_defaults(fn=cmd_smoke, accepts_gin=True)

    p = sub.add_parser(
        "data-status", help="which datasets of a collection/task/mixture are prepared"
    )
    p.add_argument("name", help="collection (e.g. flan2021), task or mixture name")
    p.add_argument("--data_dir", default=None, help="TFDS data dir (default $TFDS_DATA_DIR)")
    p.set_defaults(fn=cmd_data_status)

    p = sub.add_parser("datacard", help="write docs/<collection>_datacard.md")
    p.add_argument("collection", nargs="?", default="flan2021")
    p.add_argument("--output", default=None)
    p.set_defaults(fn=cmd_datacard)

    from flan_jax.convert import add_convert_parser  # convert: flags live in flan_jax/convert.py

    add_convert_parser(sub)

    from flan_jax.preflight import add_preflight_parser  # preflight: flags in flan_jax/preflight.py

    add_preflight_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "accepts_gin", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.extra = unknown
    if args.vocab:
        os.environ["FLAN_JAX_VOCAB"] = args.vocab
    _quiet_tf()
    from flan_jax import naming, registry, templates
    from flan_jax.train import TrainingDiverged as TrainingDivergedError

    try:
        args.fn(args)
    except (
        UserError,
        registry.RegistryError,
        naming.InvalidNameError,
        templates.TemplateError,
        FileNotFoundError,
        PermissionError,
        ValueError,
        TrainingDivergedError,
    ) as e:
        if os.environ.get("FLAN_JAX_DEBUG"):
            raise  # the full traceback, for developers
        print(f"flan-jax: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
