"""Data subcommands: list, inspect, train-vocab, data-status, datacard."""

from __future__ import annotations

import argparse
import importlib
import os
from typing import Any

import numpy as np
import seqio

from flan_jax import catalog, mixing, naming, vocab
from flan_jax.cli.common import UserError, vocabulary_spec


def _vocabulary(args: argparse.Namespace) -> seqio.Vocabulary:
    return vocab.get_vocabulary(vocabulary_spec(args))


def _tasks_of(provider: seqio.Task | seqio.Mixture) -> list[seqio.Task]:
    return list(provider.tasks) if isinstance(provider, seqio.Mixture) else [provider]


# ---------------------------------------------------------------------------------------------
# list


def cmd_list(args: argparse.Namespace) -> None:
    """Collections, their clusters and datasets, and the mixtures registered for them."""
    vocabulary = _vocabulary(args)
    names = [args.collection] if args.collection else catalog.available_collections()
    for name in names:
        collection = catalog.get_collection(name, vocabulary)
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


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return repr(value.decode("utf-8", "replace"))
    if isinstance(value, np.ndarray) and value.dtype == object:
        return repr([v.decode("utf-8", "replace") for v in value.ravel()])
    return repr(value.tolist() if hasattr(value, "tolist") else value)


def cmd_inspect(args: argparse.Namespace) -> None:
    """A task's raw and rendered examples, or a mixture's members and rates."""
    vocabulary = _vocabulary(args)
    provider = catalog.get_task_or_mixture(args.name, vocabulary)
    if isinstance(provider, seqio.Mixture):
        parsed = naming.parse_name(args.name)
        collection = catalog.get_collection(parsed.collection, vocabulary)
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
    if args.split not in task.splits:
        raise UserError(
            f"task {task.name} has no split '{args.split}'; it has: {', '.join(task.splits)}"
        )
    if args.mock:
        # Schema-true random examples of the real TFDS builder: no data needed.
        import tensorflow_datasets as tfds

        with tfds.testing.mock_data(num_examples=max(args.n, 1)):
            _show_examples(task, args.split, args.n, try_in_mem_cache=False)
        return
    _show_examples(task, args.split, args.n)


def _show_examples(task: seqio.Task, split: str, n: int, try_in_mem_cache: bool = True) -> None:
    vocabulary = task.output_features["targets"].vocabulary
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
    """A SentencePiece model (newlines kept) trained on a task's or mixture's rendered text."""
    if os.path.exists(args.output + ".model") and not args.overwrite:
        raise UserError(f"{args.output}.model exists; pass --overwrite or choose another prefix")
    provider = catalog.get_task_or_mixture(args.name, _vocabulary(args))
    # Mixtures drop the raw text, so read their member tasks (sharing the example budget).
    tasks = _tasks_of(provider)
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
# data-status / datacard


def _datasets_of(name: str, vocabulary: seqio.Vocabulary) -> list[Any]:
    """The task specs of a collection, task or mixture name."""
    if ":" not in name:
        return list(catalog.get_collection(name, vocabulary).specs)
    tasks = _tasks_of(catalog.get_task_or_mixture(name, vocabulary))
    collection = catalog.get_collection(naming.parse_name(name).collection, vocabulary)
    seen = dict.fromkeys(naming.parse_name(t.name).dataset for t in tasks)
    return [collection.spec(d) for d in seen]


def cmd_data_status(args: argparse.Namespace) -> None:
    """Which datasets of a collection/task/mixture are prepared in the TFDS data dir."""
    specs = _datasets_of(args.name, _vocabulary(args))
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


def datacard_markdown(name: str, vocabulary: seqio.Vocabulary | None = None) -> str:
    """The markdown data card of a collection: one row per dataset."""
    collection = catalog.get_collection(name, vocabulary or vocab.get_vocabulary("byte"))
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
    """Writes the collection's data card (never over a file that is not a data card)."""
    text = datacard_markdown(args.collection, _vocabulary(args))
    output = args.output or f"docs/{args.collection}_datacard.md"
    if os.path.exists(output):
        with open(output, encoding="utf-8") as f:
            if not f.read().startswith("# Data card: "):
                raise UserError(
                    f"{output} exists and is not a data card; choose another --output "
                    "(nothing overwritten)"
                )
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {output} ({text.count(chr(10))} lines)")
