"""FLAN's aggregation of per-template results, and the report writers.

Input: one `TemplateResult` per (dataset, template, split) with that task's metric dict.
Per dataset, on the report split (`test`), over its templates: the mean and standard deviation
(population std, ddof=0, over templates), the maximum, and the "best dev template" score
(the template with the highest score on `validation`, reported on `test`). Per cluster: the
mean over its datasets of each of those. The score of a task is its dataset's primary metric,
named in its spec (``TaskSpec.primary_metric``); results.md shows it per dataset.

Writers put `results.json`, `results.md` and one `<cluster>.png` bar chart per cluster into a
directory (the trainer uses MODEL_DIR/eval/), and `write_examples` writes per-example outputs as
JSONL.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

DEV_SPLIT = "validation"
REPORT_SPLIT = "test"


@dataclasses.dataclass(frozen=True)
class TemplateResult:
    """The metrics of one (dataset, template, split) evaluation."""

    cluster: str
    dataset: str
    template: int
    split: str
    metrics: Mapping[str, float]


def primary_metric(
    metrics: Mapping[str, float], dataset: str | None = None, cluster: str | None = None
) -> str:
    """The metric that ranks templates and fills the tables: the one the dataset's spec names
    (``TaskSpec.primary_metric``, looked up in the registered collections), else "accuracy"
    when reported, else the first metric (datasets whose spec names none)."""
    if not metrics:
        raise ValueError("primary_metric: the task reported no metrics")
    if dataset is not None:
        from flan_jax import registry  # the registered collections of this process

        named = {
            s.primary_metric
            for c in registry.collections().values()
            for s in c.specs
            if s.name == dataset and (cluster is None or s.cluster == cluster) and s.primary_metric
        }
        if len(named) == 1:
            metric = named.pop()
            if metric not in metrics:
                raise ValueError(
                    f"dataset {dataset!r} names primary metric {metric!r}, but its task "
                    f"reported only {sorted(metrics)}"
                )
            return metric
    return "accuracy" if "accuracy" in metrics else next(iter(metrics))


def _mean(values: Iterable[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def aggregate(
    results: Sequence[TemplateResult],
    dev_split: str = DEV_SPLIT,
    report_split: str = REPORT_SPLIT,
) -> dict[str, Any]:
    """Per-dataset and per-cluster summary (see the module docstring) as a JSON-ready dict.

    ``{"datasets": {name: {...}}, "clusters": {name: {...}}, "dev_split", "report_split"}``;
    a dataset entry holds cluster, metric, per-template scores on both splits, mean, std, max,
    best_dev_template and best_dev (None when the dev split was not evaluated).
    """
    by_dataset: dict[str, list[TemplateResult]] = {}
    for r in results:
        by_dataset.setdefault(r.dataset, []).append(r)

    datasets: dict[str, dict[str, Any]] = {}
    for name, rows in by_dataset.items():
        clusters = {r.cluster for r in rows}
        if len(clusters) != 1:
            raise ValueError(f"dataset {name!r} is listed under clusters {sorted(clusters)}")
        report = {r.template: r.metrics for r in rows if r.split == report_split}
        dev = {r.template: r.metrics for r in rows if r.split == dev_split}
        if not report:
            raise ValueError(
                f"dataset {name!r} has no {report_split!r} results (splits seen: "
                f"{sorted({r.split for r in rows})}); evaluate the {report_split} split"
            )
        metric = primary_metric(next(iter(report.values())), name, next(iter(clusters)))
        test_scores = {t: float(m[metric]) for t, m in sorted(report.items())}
        dev_scores = {t: float(m[metric]) for t, m in sorted(dev.items())}
        values = np.array(list(test_scores.values()))
        best_template = max(dev_scores, key=lambda t: (dev_scores[t], -t)) if dev_scores else None
        datasets[name] = {
            "cluster": clusters.pop(),
            "metric": metric,
            "templates": test_scores,
            "dev_templates": dev_scores,
            "mean": float(values.mean()),
            "std": float(values.std()),
            "max": float(values.max()),
            "best_dev_template": best_template,
            "best_dev": test_scores.get(best_template) if best_template is not None else None,
        }

    clusters: dict[str, dict[str, Any]] = {}
    for name, d in datasets.items():
        clusters.setdefault(d["cluster"], {"datasets": []})["datasets"].append(name)
    for c in clusters.values():
        members = [datasets[n] for n in c["datasets"]]
        for key in ("mean", "best_dev", "max"):
            c[key] = _mean(m[key] for m in members)
    return {
        "dev_split": dev_split,
        "report_split": report_split,
        "datasets": datasets,
        "clusters": clusters,
    }


# ---------------------------------------------------------------------------------------------
# Writers.


def write_json(summary: Mapping[str, Any], path: str) -> str:
    """The summary as indented JSON (NaN written as null)."""

    def clean(x: Any) -> Any:
        if isinstance(x, float) and math.isnan(x):
            return None
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        return x

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(clean(dict(summary)), f, indent=2, sort_keys=True)
    return path


def _fmt(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}"


def markdown_table(summary: Mapping[str, Any]) -> str:
    """Per-cluster sections: a row per dataset, then the cluster mean."""
    lines = [
        f"Scores on `{summary['report_split']}`; best-dev template picked on "
        f"`{summary['dev_split']}`.",
        "",
    ]
    for cluster, c in summary["clusters"].items():
        lines += [
            f"### {cluster}",
            "",
            "| dataset | metric | templates | mean | std | best dev (template) | max |",
            "|---|---|---|---|---|---|---|",
        ]
        for name in c["datasets"]:
            d = summary["datasets"][name]
            best = f"{_fmt(d['best_dev'])} (t{d['best_dev_template']})"
            if d["best_dev_template"] is None:
                best = "-"
            lines.append(
                f"| {name} | {d['metric']} | {len(d['templates'])} | {_fmt(d['mean'])} | "
                f"{_fmt(d['std'])} | {best} | {_fmt(d['max'])} |"
            )
        lines.append(
            f"| **cluster mean** | | | **{_fmt(c['mean'])}** | | **{_fmt(c['best_dev'])}** | "
            f"**{_fmt(c['max'])}** |"
        )
        lines.append("")
    return "\n".join(lines)


def write_markdown(summary: Mapping[str, Any], path: str) -> str:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        f.write(markdown_table(summary))
    return path


def plot_clusters(summary: Mapping[str, Any], out_dir: str) -> list[str]:
    """One PNG per cluster: per dataset, mean over templates (std error bar) and best-dev."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on training hosts
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for cluster, c in summary["clusters"].items():
        names = c["datasets"]
        rows = [summary["datasets"][n] for n in names]
        x = np.arange(len(names))
        fig, ax = plt.subplots(figsize=(max(4.0, 1.4 * len(names) + 1.5), 3.5))
        ax.bar(x - 0.2, [r["mean"] for r in rows], 0.4, yerr=[r["std"] for r in rows],
               label="mean over templates", capsize=3)  # fmt: skip
        best = [r["best_dev"] if r["best_dev"] is not None else 0.0 for r in rows]
        ax.bar(x + 0.2, best, 0.4, label="best dev template")
        ax.axhline(c["mean"], color="gray", linestyle="--", linewidth=1, label="cluster mean")
        ax.set_xticks(x, names, rotation=20, ha="right")
        ax.set_ylabel(", ".join(sorted({r["metric"] for r in rows})))
        ax.set_title(f"held-out cluster: {cluster}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = os.path.join(out_dir, f"{cluster}.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def write_reports(summary: Mapping[str, Any], out_dir: str) -> dict[str, Any]:
    """results.json, results.md and the cluster charts into `out_dir`; returns their paths."""
    return {
        "json": write_json(summary, os.path.join(out_dir, "results.json")),
        "markdown": write_markdown(summary, os.path.join(out_dir, "results.md")),
        "plots": plot_clusters(summary, out_dir),
    }


def _jsonable(x: Any) -> Any:
    if isinstance(x, bytes):
        return x.decode("utf-8", errors="replace")
    if isinstance(x, np.ndarray):
        return [_jsonable(v) for v in x.tolist()]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    return x


def examples_path(out_dir: str, task: str) -> str:
    """Where `write_examples` puts a task's rows (':' is not portable in file names)."""
    return os.path.join(out_dir, task.replace(":", "__") + ".jsonl")


def write_examples(out_dir: str, task: str, rows: Iterable[Mapping[str, Any]]) -> str:
    """One JSON object per example (input, target, prediction or option scores, ...)."""
    os.makedirs(out_dir, exist_ok=True)
    path = examples_path(out_dir, task)
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(_jsonable(row), sort_keys=True) + "\n")
    return path
