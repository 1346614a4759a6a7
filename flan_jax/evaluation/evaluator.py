"""seqio.Evaluator glue: predict/score functions over our decoders and scorers, and the
held-out evaluation of a task or mixture with FLAN's aggregation.

    results = evaluate_mixture(model, params, layout, "demo:heldout_nli:eval",
                               {"inputs": 256, "targets": 32}, ("validation", "test"),
                               batch_size=64, out_dir=f"{MODEL_DIR}/eval",
                               vocabulary=vocab.get_vocabulary("byte"))

The Evaluator hands the functions a dataset of ``(index, model features)``; rows are cut back
into (inputs, targets) token ids, so scoring and decoding see the same rows whatever the model
family's batch layout (seqio's EncDec or PrefixLM feature converter, unpacked as evaluation
requires).

Params are placed once per evaluation, by the caller: `evaluate_mixture` and the functions it
builds take params already laid out on `layout` (`jobs.evaluate` restores them onto
`layout.abstract_on_mesh`; `train` passes its sharded state) and never move them.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np
import seqio
import tensorflow_datasets as tfds
from etils import epath

from flan_jax import catalog, input_pipeline, naming, partitioning, registry, run_dir
from flan_jax.evaluation import aggregate, decoding, scoring

PredictFn = Callable[..., list[tuple[int, np.ndarray]]]
ScoreFn = Callable[..., list[tuple[int, float]]]
DEFAULT_SPLITS = ("validation", "test")


class EvalError(ValueError):
    """A bad evaluation request (unknown split, rank classification without options...)."""


def feature_converter(model: nn.Module) -> seqio.FeatureConverter:
    """The unpacked converter of the model's batch layout (the training one, without packing)."""
    return input_pipeline.feature_converter(model.config, pack=False)


def _trim(ids: np.ndarray) -> list[int]:
    return [int(x) for x in ids if x > 0]


def rows_from_features(features: Mapping[str, np.ndarray]) -> dict[str, list[int]]:
    """One model-feature example -> {"inputs": ids, "targets": ids} (padding removed)."""
    if "encoder_input_tokens" in features:
        return {
            "inputs": _trim(features["encoder_input_tokens"]),
            "targets": _trim(features["decoder_target_tokens"]),
        }
    tokens = np.asarray(features["decoder_target_tokens"])
    weights = np.asarray(features["decoder_loss_weights"]) > 0
    if "decoder_causal_attention" in features:
        # seqio's prefix marker covers the inputs plus one position.
        n_in = int(np.sum(features["decoder_causal_attention"])) - 1
    else:
        n_in = int(np.argmax(weights)) if weights.any() else len(tokens)
    return {"inputs": _trim(tokens[:n_in]), "targets": _trim(tokens[weights])}


def _read(ds: Any) -> tuple[list[int], list[dict[str, list[int]]]]:
    indices, rows = [], []
    for index, features in tfds.as_numpy(ds):
        indices.append(int(index))
        rows.append(rows_from_features(features))
    return indices, rows


def make_predict_fn(
    model: nn.Module,
    params: Any,
    layout: partitioning.Layout,
    feature_lengths: Mapping[str, int],
    batch_size: int,
    config: decoding.DecodeConfig = decoding.GREEDY,
    *,
    bucket: bool = True,
    read: Callable[[Any], tuple[list[int], list[dict[str, list[int]]]]] = _read,
) -> PredictFn:
    """`predict_fn(ds, model_feature_shapes=None) -> [(index, token_ids)]` for seqio.

    Decodes up to ``feature_lengths["targets"]`` tokens; all outputs have that length (0 after
    EOS), as seqio stacks them into one array. `params` are laid out on `layout`. Every process
    calls it on the same dataset and gets every output (each decodes its share).
    """

    def predict_fn(ds: Any, model_feature_shapes: Any = None) -> list[tuple[int, np.ndarray]]:
        del model_feature_shapes  # seqio calls with the dataset only (see stack.md)
        indices, rows = read(ds)
        tokens = decoding.decode_rows(
            model,
            params,
            [r["inputs"] for r in rows],
            layout,
            batch_size,
            feature_lengths,
            config,
            bucket=bucket,
        )
        return list(zip(indices, tokens, strict=True))

    return predict_fn


def make_score_fn(
    model: nn.Module,
    params: Any,
    layout: partitioning.Layout,
    feature_lengths: Mapping[str, int],
    batch_size: int,
    normalize: bool = False,
    shared: bool = True,
    *,
    prefix_lm: bool = True,
    bucket: bool = True,
    read: Callable[[Any], tuple[list[int], list[dict[str, list[int]]]]] = _read,
) -> ScoreFn:
    """`score_fn(ds, model_feature_shapes=None) -> [(index, log-likelihood)]` for seqio;
    `params` are laid out on `layout`. Every process gets every score (each scores its share)."""

    def score_fn(ds: Any, model_feature_shapes: Any = None) -> list[tuple[int, float]]:
        del model_feature_shapes
        indices, rows = read(ds)
        scores = scoring.score_rows(
            model,
            params,
            rows,
            layout,
            batch_size,
            feature_lengths,
            normalize,
            shared,
            prefix_lm=prefix_lm,
            bucket=bucket,
        )
        return [(i, float(s)) for i, s in zip(indices, scores, strict=True)]

    return score_fn


# ---------------------------------------------------------------------------------------------
# Task resolution with errors a user can act on.


def _spec_for(name: str, vocabulary: seqio.Vocabulary) -> registry.TaskSpec | None:
    try:
        parsed = naming.parse_name(name)
    except naming.InvalidNameError:
        return None
    if parsed.is_mixture or parsed.dataset is None:
        return None
    try:
        return catalog.get_collection(parsed.collection, vocabulary).spec(parsed.dataset)
    except registry.RegistryError:
        return None


def check_rank_task(name: str, vocabulary: seqio.Vocabulary) -> None:
    """Fails with one line when `name` asks for rank classification of a dataset without options
    or of a template whose target is not the chosen option (a turned-around template)."""
    parsed = naming.parse_name(name)
    if parsed.is_mixture or not parsed.rank:
        return
    spec = _spec_for(name, vocabulary)
    if spec is None:
        return
    generative = naming.task_name(parsed.collection, spec.name, parsed.template)
    if not spec.has_options:
        raise EvalError(
            f"task '{name}': dataset '{spec.name}' has no options, so it cannot be evaluated "
            f"by rank classification; evaluate the generative task '{generative}'"
        )
    if parsed.template is not None and parsed.template < len(spec.templates):
        if not spec.templates[parsed.template].is_rankable:
            raise EvalError(
                f"task '{name}': template {parsed.template} of '{spec.name}' does not answer with "
                f"one of the options (turned around), so it has no rank task; evaluate "
                f"'{generative}' or an original-task template"
            )


def resolve_eval_tasks(
    name: str, splits: Sequence[str], vocabulary: seqio.Vocabulary
) -> list[seqio.Task]:
    """The seqio tasks behind a task or mixture name, each checked to have every split."""
    check_rank_task(name, vocabulary)
    provider = catalog.get_task_or_mixture(name, vocabulary)
    tasks = seqio.get_subtasks(provider)
    for task in tasks:
        check_rank_task(task.name, vocabulary)
        for split in splits:
            if split not in task.splits:
                raise EvalError(
                    f"task '{task.name}' has no '{split}' split (its splits: "
                    f"{', '.join(task.splits)}); evaluate one of those"
                )
    return list(tasks)


# ---------------------------------------------------------------------------------------------
# The held-out evaluation.


def _task_identity(task_name: str, vocabulary: seqio.Vocabulary) -> tuple[str, str, int]:
    """(cluster, dataset, template) from a task name; unknown parts become the name / -1."""
    spec = _spec_for(task_name, vocabulary)
    try:
        parsed = naming.parse_name(task_name)
        template = parsed.template if parsed.template is not None else -1
    except naming.InvalidNameError:
        template = -1
    if spec is None:
        return "unknown", task_name, template
    return spec.cluster, spec.name, template


def _example_rows(
    task: seqio.Task, examples: Sequence[Mapping[str, Any]], outputs: Mapping[Any, Any]
) -> list[dict[str, Any]]:
    """Per-example records for `write_examples`: rank tasks grouped by example."""
    vocab = task.output_features["targets"].vocabulary
    scores = outputs.get(seqio.metrics.ModelOutputType.SCORE)
    predictions = outputs.get(seqio.metrics.ModelOutputType.PREDICTION)

    def text(ex: Mapping[str, Any], key: str) -> str:
        raw = ex.get(f"{key}_pretokenized")
        if raw is None:
            raw = vocab.decode([int(x) for x in ex[key]])
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    if scores is not None and examples and "option_index" in examples[0]:
        groups: dict[int, dict[str, Any]] = collections.OrderedDict()
        for ex, score in zip(examples, scores, strict=True):
            g = groups.setdefault(
                int(ex["idx"]),
                {"idx": int(ex["idx"]), "input": text(ex, "inputs"), "options": [], "scores": []},
            )
            g["options"].append(text(ex, "targets"))
            g["scores"].append(float(score))
            if bool(ex["is_correct"]):
                g["correct"] = int(ex["option_index"])
        for g in groups.values():
            g["predicted"] = int(np.argmax(g["scores"]))
        return list(groups.values())

    rows = []
    for i, ex in enumerate(examples):
        row: dict[str, Any] = {"input": text(ex, "inputs"), "target": text(ex, "targets")}
        if predictions is not None:
            row["prediction"] = vocab.decode([int(x) for x in predictions[i]])
        if scores is not None:
            row["score"] = float(scores[i])
        rows.append(row)
    return rows


class EvalSuite:
    """The seqio Evaluators of some names on some splits: built once, run on any params.

    Building reads and caches every task's eval examples (and their rows for our scorers);
    `evaluate` then only computes. The trainer keeps one suite for all its periodic evals, and
    `flan-jax eval --watch` one for every checkpoint it follows. Every process of a multi-host
    job builds the same suite and calls `evaluate` together; only process 0 writes files.
    """

    def __init__(
        self,
        model: nn.Module,
        mixture_or_task_name: str | Sequence[str],
        feature_lengths: Mapping[str, int],
        splits: str | Sequence[str] = DEFAULT_SPLITS,
        *,
        vocabulary: seqio.Vocabulary,
        num_examples: int | None = None,
    ) -> None:
        self.names = (
            [mixture_or_task_name]
            if isinstance(mixture_or_task_name, str)
            else list(mixture_or_task_name)
        )
        self.splits = (splits,) if isinstance(splits, str) else tuple(splits)
        self.vocabulary = vocabulary
        for name in self.names:
            # Fail early, before anything compiles or reads data.
            resolve_eval_tasks(name, self.splits, vocabulary)
        self.lengths = {
            "inputs": int(feature_lengths["inputs"]),
            "targets": int(feature_lengths["targets"]),
        }
        self._evaluators = {
            (split, name): seqio.Evaluator(
                mixture_or_task_name=name,
                feature_converter=feature_converter(model),
                eval_split=split,
                sequence_length=self.lengths,
                num_examples=num_examples,
                async_compute_metrics=False,
            )
            for split in self.splits
            for name in self.names
        }
        self._rows: dict[int, tuple[Any, tuple[list[int], list[dict[str, list[int]]]]]] = {}
        # (split, task) -> its cached eval examples as numpy, for the per-example files.
        self._examples: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def _read(self, ds: Any) -> tuple[list[int], list[dict[str, list[int]]]]:
        """Rows of a cached eval dataset, read once (the dataset object is the key)."""
        if id(ds) not in self._rows:
            self._rows[id(ds)] = (ds, _read(ds))  # ds kept alive, so its id stays its own
        return self._rows[id(ds)][1]

    def evaluate(
        self,
        model: nn.Module,
        params: Any,
        layout: partitioning.Layout,
        batch_size: int = 64,
        out_dir: str | None = None,
        *,
        decode_config: decoding.DecodeConfig = decoding.GREEDY,
        normalize: bool = False,
        shared: bool = True,
        bucket: bool = True,
    ) -> dict[str, Any]:
        """Scores / decodes every task with `params` (laid out on `layout`, never moved) and
        aggregates FLAN-style; see `evaluate_mixture` for the result and the files."""
        lengths = self.lengths
        predict_fn = make_predict_fn(
            model,
            params,
            layout,
            lengths,
            batch_size,
            decode_config,
            bucket=bucket,
            read=self._read,
        )
        score_fn = make_score_fn(
            model,
            params,
            layout,
            lengths,
            batch_size,
            normalize,
            shared,
            prefix_lm=decode_config.prefix_lm,
            bucket=bucket,
            read=self._read,
        )
        writes = out_dir is not None and jax.process_index() == 0
        metrics: dict[str, dict[str, dict[str, float]]] = {}
        files: dict[str, Any] = {"examples": []}
        for split in self.splits:
            metrics[split] = {}
            for name in self.names:
                evaluator = self._evaluators[(split, name)]
                future, outputs = evaluator.evaluate(
                    compute_metrics=True, predict_fn=predict_fn, score_fn=score_fn
                )
                for task in evaluator.eval_tasks:
                    task_metrics = {k: float(v) for k, v in future.result()[task.name].items()}
                    metrics[split][task.name] = task_metrics
                    if writes:
                        key = (split, task.name)
                        if key not in self._examples:  # read once, reused by later evaluations
                            self._examples[key] = list(
                                tfds.as_numpy(evaluator.cached_task_datasets[task.name])
                            )
                        rows = _example_rows(task, self._examples[key], outputs[task.name])
                        files["examples"].append(
                            aggregate.write_examples(f"{out_dir}/examples/{split}", task.name, rows)
                        )

        summary = None
        if aggregate.REPORT_SPLIT in self.splits:
            summary = aggregate.aggregate(template_results(metrics, self.vocabulary))
            if writes:
                files.update(aggregate.write_reports(summary, out_dir))
        if writes:
            # Last, so its presence means the whole evaluation was written (`--watch` skips it).
            files["metrics"] = write_metrics(out_dir, self.names, self.splits, metrics)
        return {"metrics": metrics, "summary": summary, "files": files}

    def close(self) -> None:
        for evaluator in self._evaluators.values():
            evaluator.close()


def template_results(
    metrics: Mapping[str, Mapping[str, Mapping[str, float]]], vocabulary: seqio.Vocabulary
) -> list[aggregate.TemplateResult]:
    """`{split: {task: metrics}}` (an evaluation's "metrics", or metrics.json's) as the
    per-template results `aggregate.aggregate` takes."""
    out = []
    for split, tasks in metrics.items():
        for task, task_metrics in tasks.items():
            cluster, dataset, template = _task_identity(task, vocabulary)
            out.append(aggregate.TemplateResult(cluster, dataset, template, split, task_metrics))
    return out


METRICS_FILE = "metrics.json"


def write_metrics(
    out_dir: str,
    names: Sequence[str],
    splits: Sequence[str],
    metrics: Mapping[str, Mapping[str, Mapping[str, float]]],
) -> str:
    """`out_dir/metrics.json`: what was evaluated and every task's metrics (atomic)."""
    path = epath.Path(out_dir) / METRICS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"names": list(names), "splits": list(splits), "metrics": metrics}
    run_dir.atomic_write(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return str(path)


def read_metrics(out_dir: str) -> dict[str, Any] | None:
    """What `write_metrics` wrote in `out_dir`, or None when it holds no complete evaluation."""
    path = epath.Path(out_dir) / METRICS_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def evaluate_mixture(
    model: nn.Module,
    params: Any,
    layout: partitioning.Layout,
    mixture_or_task_name: str | Sequence[str],
    feature_lengths: Mapping[str, int],
    splits: str | Sequence[str] = DEFAULT_SPLITS,
    batch_size: int = 64,
    out_dir: str | None = None,
    *,
    vocabulary: seqio.Vocabulary,
    num_examples: int | None = None,
    decode_config: decoding.DecodeConfig = decoding.GREEDY,
    normalize: bool = False,
    shared: bool = True,
    bucket: bool = True,
) -> dict[str, Any]:
    """Runs seqio.Evaluator over every task of the name(s), per split, and aggregates FLAN-style.

    Rank tasks are scored (`make_score_fn`), the others decoded (`make_predict_fn`).
    `params` are laid out on `layout` (the job's mesh and rules) and stay where they are.
    `vocabulary` is the run's: the names' collections are registered with it (`catalog`).
    `num_examples` caps the examples (rows, for rank tasks) read per task and split.
    With `out_dir`, process 0 writes results.json / results.md / per-cluster PNGs there,
    per-example JSONL files under `out_dir/examples/<split>/` and, last, metrics.json.
    `bucket` sorts examples by length into padded-length buckets (same results, less padding).

    Returns ``{"metrics": {split: {task: {metric: value}}}, "summary": aggregate(...) or None,
    "files": {...}}``; the summary needs the `test` split (best-dev also needs `validation`).
    """
    suite = EvalSuite(
        model,
        mixture_or_task_name,
        feature_lengths,
        splits,
        vocabulary=vocabulary,
        num_examples=num_examples,
    )
    try:
        return suite.evaluate(
            model,
            params,
            layout,
            batch_size,
            out_dir,
            decode_config=decode_config,
            normalize=normalize,
            shared=shared,
            bucket=bucket,
        )
    finally:
        suite.close()
