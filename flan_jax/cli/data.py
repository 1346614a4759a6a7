"""Data subcommands: list, inspect, train-vocab, data-status, datacard."""

from __future__ import annotations

import argparse
import importlib
import os
import re
from typing import Any

import numpy as np
import seqio

from flan_jax import catalog, mixing, naming, vocab
from flan_jax.cli.common import UserError, vocabulary_spec


def _vocabulary(args: argparse.Namespace) -> seqio.Vocabulary:
    catalog.use_templates(getattr(args, "templates", None))  # before any collection registers
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


_SLICE = re.compile(r"^(?P<base>[\w-]+)(?:\[(?P<a>-?\d*):(?P<b>-?\d*)\])?$")


def split_size(split: str, n: int) -> int:
    """How many of a split's ``n`` examples a split string such as ``train[:-200]`` selects."""
    m = _SLICE.match(split.strip())
    if m is None:
        raise ValueError(f"split string {split!r} is not NAME or NAME[a:b]")
    a = int(m["a"]) if m["a"] else None
    b = int(m["b"]) if m["b"] else None
    return len(range(n)[slice(a, b)])


def planned_train_examples(spec: Any, sizes: dict[str, int]) -> int | None:
    """Train examples a spec's split string selects from the official size (None: unknown)."""
    if "train" not in spec.splits:
        return 0
    n = sizes.get(spec.name)
    return None if n is None else split_size(spec.splits["train"], n)


def _train_sizes(collection_name: str) -> dict[str, int]:
    return getattr(importlib.import_module(f"flan_jax.tasks.{collection_name}"), "TRAIN_SIZES", {})


def _inspect_mixture(name: str, provider: seqio.Mixture, vocabulary: seqio.Vocabulary) -> None:
    """Members, rates (planned from known split sizes when no data is prepared), held-out
    membership and overlap rules of a mixture."""
    parsed = naming.parse_name(name)
    collection = catalog.get_collection(parsed.collection, vocabulary)
    plan = mixing.plan_heldout(collection, parsed.heldout)
    print(f"mixture {name}")
    print(
        f"  held out: {', '.join(plan.heldout) or 'none'}; "
        f"excluded clusters: {', '.join(plan.excluded) or 'none'}"
    )
    rates = {t.name: provider.get_rate(t) for t in provider.tasks}
    if sum(rates.values()) <= 0 and parsed.kind == "train":
        # No prepared data: plan from the official split sizes and the split strings.
        sizes = _train_sizes(parsed.collection)
        print("  rates: planned from official split sizes (no prepared TFDS data found)")
        for t in provider.tasks:
            used = planned_train_examples(collection.spec(naming.parse_name(t.name).dataset), sizes)
            rates[t.name] = (
                float("nan")
                if used is None
                else mixing.examples_proportional_rate(used, plan.cap, plan.max_rate)
            )
    total = sum(r for r in rates.values() if r == r)
    for t in provider.tasks:
        rate = rates[t.name]
        if rate != rate:
            print(f"  {t.name:<44} rate  unknown  (no prepared data, no known size)")
        elif total > 0:
            print(f"  {t.name:<44} rate {rate:>8.0f}  ({100 * rate / total:5.1f}%)")
        else:
            print(f"  {t.name:<44} rate  (weighted by test examples once data is prepared)")
    if parsed.kind == "train" and collection.overlaps:
        print("  overlap rules (dedup is off by default, as in FLAN):")
        trained = {s.name for s in plan.train_datasets}
        for rule in collection.overlaps:
            for own, other in ((rule.dataset_a, rule.dataset_b), (rule.dataset_b, rule.dataset_a)):
                if own in trained and collection.spec(other).cluster in plan.heldout:
                    variant = naming.task_name(
                        collection.name, own, dedup=(collection.spec(other).cluster,)
                    )
                    print(
                        f"    {own} shares examples with held-out {other}: {rule.why}; "
                        f"dedup variant {variant}"
                    )


def cmd_inspect(args: argparse.Namespace) -> None:
    """A task's raw and rendered examples, or a mixture's members and rates."""
    vocabulary = _vocabulary(args)
    provider = catalog.get_task_or_mixture(args.name, vocabulary)
    if isinstance(provider, seqio.Mixture):
        _inspect_mixture(args.name, provider, vocabulary)
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
    module = importlib.import_module(f"flan_jax.tasks.{name}")
    sizes = getattr(module, "TRAIN_SIZES", {})
    lines = [
        f"# Data card: `{name}`",
        "",
        "Generated by `flan-jax datacard "
        + name
        + "` from the registered task specs (do not edit by hand).",
        "",
        f"{len(collection.clusters)} clusters, {len(collection.specs)} datasets. Split strings "
        "are FLAN's own, per dataset (train capped at 30,000; dev usually the last 200 train "
        "examples or the first 200 validation examples; see each row). Mixing rate = "
        "min(train examples, 3,000). Train size: the official train split (public statistics) "
        "and the examples the train split string selects; without a known size, the cap rule. "
        "Every original-task template of a dataset with options is scored by rank "
        "classification; the metric column names the primary metric first.",
        "",
        "| cluster | dataset | builder | templates | turned-around | options | metric "
        "| train size (official -> used) | splits (train / dev / test) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for spec in collection.specs:
        turned = sum(t.turned_around for t in spec.templates)
        fns = spec.rank_metrics if spec.has_options else spec.metrics
        metric = f"**{spec.primary_metric}** ({', '.join(m.__name__ for m in fns)})"
        n = sizes.get(spec.name)
        used = planned_train_examples(spec, sizes)
        if not spec.trains:
            size = "evaluation only"
        elif n is None or used is None:
            size = "unknown offline -> min(n, 30,000)"
        else:
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
    lines += flan_differences(collection, module)
    return "\n".join(lines) + "\n"


def flan_differences(collection: Any, module: Any) -> list[str]:
    """The "differences from FLAN's code" section: every spec compared with the module's
    ``FLAN`` table (FLAN's builder, split strings, template structure), each difference with
    its reason from ``DIFFERENCE_REASONS``. A difference without a reason is an error."""
    flan = getattr(module, "FLAN", None)
    if flan is None:
        return []
    reasons = getattr(module, "DIFFERENCE_REASONS", {})
    rows = []
    for spec in collection.specs:
        ref = flan.get(spec.name)
        if ref is None:
            rows.append((spec.name, "dataset", "not in FLAN", "(ours)"))
            continue
        structure = "".join(
            "T" if t.turned_around else ("O" if t.options else "N") for t in spec.templates
        )
        found = [
            ("builder", ref.builder, spec.source.builder),
            ("splits", dict(ref.splits), dict(spec.splits)),
            ("templates", ref.structure, structure),
        ]
        rows += [(spec.name, what, theirs, ours) for what, theirs, ours in found if theirs != ours]
    lines = [
        "",
        "## Differences from FLAN's code",
        "",
        "Generated by comparing every dataset with FLAN's `flan/tasks.py` and `flan/templates.py` "
        "(builder, split strings, template structure: O = original task with options, N = "
        "without, T = turned around); only unavoidable differences remain.",
        "",
        "| dataset | what | FLAN | ours | why |",
        "|---|---|---|---|---|",
    ]
    for name, what, theirs, ours in rows:
        why = reasons.get((name, what))
        if why is None:
            raise ValueError(
                f"{name}: {what} differs from FLAN's code ({theirs} vs {ours}) without a reason; "
                "fix the spec or add the reason to DIFFERENCE_REASONS"
            )
        lines.append(f"| {name} | {what} | `{theirs}` | `{ours}` | {why} |")
    if not rows:
        lines.append("| (none) | | | | |")
    return lines


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
