"""Declarative task specs, turned into real ``seqio.Task``s by one registration function.

A ``TaskSpec`` says where a dataset's raw examples come from (``flan_jax.sources``), how a raw
example maps to template fields (``fields_fn``), which templates render it, and how it is scored.
``register_collection`` turns a list of specs into seqio tasks named by ``flan_jax.naming``, with
the vocabulary it is given:

- ``<c>:<d>:t<i>``: every example rendered with template i (zero-shot eval of that template);
- ``<c>:<d>:mix``: training task, each example rendered with one template chosen from
  (template seed, position in the stream), exactly even over every block of n examples;
- ``<c>:<d>:t<i>:rank``: for templates with options, one row per (example, option) with the
  example's group id ``idx`` and ``is_correct``, so a scorer can take the argmax per group; a
  ``fields_fn`` that also returns ``group`` (e.g. MultiRC's question id, shared by several
  examples) has it carried on every row, for metrics that score whole groups of examples.

Registration does no I/O: data sources open when a dataset is first read. Looking collections up
by name (and importing their modules) is ``flan_jax.catalog``'s job; training variants and
mixtures are ``flan_jax.mixing``'s, few-shot tasks ``flan_jax.fewshot``'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import seqio
import tensorflow as tf

from flan_jax import hf_vocab, naming, templates
from flan_jax import metrics as metrics_lib
from flan_jax.sources import Source
from flan_jax.templates import ANSWER_FIELD, OPTIONS_FIELD, Template, TemplateError

# Optional field of a fields_fn: an integer id shared by examples that a metric scores together
# (MultiRC: the answers of one question). Rank rows carry it as the 4th field of their target.
GROUP_FIELD = "group"

# Our split names: `validation` is FLAN's dev split (used to pick the best template).
SPLITS = ("train", "validation", "test")
DEFAULT_SPLITS: Mapping[str, str] = {"train": "train", "validation": "validation", "test": "test"}


class RegistryError(ValueError):
    """A bad registration or lookup: duplicate, unknown name, unknown cluster."""


# ---------------------------------------------------------------------------------------------
# Task specs.


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One dataset of a collection, phrased through templates.

    Attributes:
      name: dataset name (snake case), unique in its collection.
      cluster: the task cluster it belongs to (held out together).
      source: where raw examples come from.
      fields_fn: maps a raw example (dict of tensors) to template fields (dict of string
        tensors). Classification datasets provide ``options`` (1-D string tensor) and ``answer``.
      fields: the field names ``fields_fn`` returns; templates are checked against them.
      templates: the instruction templates.
      metrics: seqio metric functions for the generative per-template tasks.
      postprocessor: ``fn(text, example=None, is_target=False)`` applied before metrics.
      splits: our split name -> source split (e.g. ``{"validation": "train[-200:]"}``).
      description: one line for ``flan-jax list`` and the data card.
      filter_fn: optional predicate on raw examples; examples where it is False are dropped
        before anything else (e.g. unlabelled rows, a class the templates do not cover).
      rank_metrics: metric functions of the ``:rank`` tasks (default: rank accuracy).
      primary_metric: the metric key that scores the dataset (ranks its templates, fills the
        results tables), e.g. ``"accuracy"``, ``"bleu"``, ``"rougeL"``; None: the evaluation
        report's default.
    """

    name: str
    cluster: str
    source: Source
    fields_fn: Callable[[Mapping[str, tf.Tensor]], Mapping[str, tf.Tensor]]
    fields: tuple[str, ...]
    templates: tuple[Template, ...]
    metrics: tuple[Callable[..., Mapping[str, Any]], ...] = (metrics_lib.exact_match,)
    postprocessor: Callable[..., Any] | None = None
    splits: Mapping[str, str] = dataclasses.field(default_factory=lambda: dict(DEFAULT_SPLITS))
    description: str = ""
    filter_fn: Callable[[Mapping[str, tf.Tensor]], tf.Tensor] | None = None
    rank_metrics: tuple[Callable[..., Mapping[str, Any]], ...] = (metrics_lib.rank_classification,)
    primary_metric: str | None = None

    def __post_init__(self):
        naming.check_ident("dataset", self.name)
        naming.check_ident("cluster", self.cluster)
        if not self.templates:
            raise TemplateError(f"dataset '{self.name}' has no templates; give at least one")
        if OPTIONS_FIELD in self.fields and ANSWER_FIELD not in self.fields:
            raise TemplateError(
                f"dataset '{self.name}' provides options but no answer; add 'answer' to fields"
            )
        for i, t in enumerate(self.templates):
            templates.check_template_fields(self.name, i, t, self.fields)
        unknown = set(self.splits) - set(SPLITS)
        if unknown:
            raise RegistryError(
                f"dataset '{self.name}' maps unknown split '{sorted(unknown)[0]}'; "
                f"use one of {', '.join(SPLITS)}"
            )

    @property
    def has_options(self) -> bool:
        return OPTIONS_FIELD in self.fields

    @property
    def trains(self) -> bool:
        """Whether the dataset has a train split (eval-only datasets such as WSC273 do not)."""
        return "train" in self.splits

    @property
    def eval_templates(self) -> tuple[int, ...]:
        """Indices of templates used for zero-shot evaluation (turned-around ones excluded)."""
        return tuple(i for i, t in enumerate(self.templates) if not t.turned_around)


# ---------------------------------------------------------------------------------------------
# Preprocessors (closures over a spec; seqio maps them over the raw dataset).


def _fields_preprocessor(spec: TaskSpec) -> Callable[[tf.data.Dataset], tf.data.Dataset]:
    """Raw example -> template fields, plus ``idx`` (position in the split: the group id)."""

    def fields(idx: tf.Tensor, ex: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        out = dict(spec.fields_fn(ex))
        # Runs at trace time, i.e. when the dataset is first read: name the template that breaks.
        for i, t in enumerate(spec.templates):
            missing = sorted(t.fields - set(out))
            if missing:
                raise TemplateError(
                    f"dataset '{spec.name}' template {i} uses field '{missing[0]}', which "
                    f"fields_fn did not return (it returned: {', '.join(sorted(out))})"
                )
        if OPTIONS_FIELD in out:
            options = out[OPTIONS_FIELD]
            if options.shape.rank != 1:
                raise TemplateError(f"dataset '{spec.name}': options must be a 1-D string tensor")
            if options.shape[0] == 0:
                raise TemplateError(f"dataset '{spec.name}': options are empty; give >= 1 choice")
            with tf.control_dependencies(
                [
                    tf.debugging.assert_positive(
                        tf.size(options), message=f"dataset '{spec.name}': empty options"
                    )
                ]
            ):
                out[OPTIONS_FIELD] = tf.identity(options)
        out["idx"] = idx
        return out

    # No autograph: the checks above are plain Python at trace time, and autograph would wrap
    # their errors in a StagingError with a long trace.
    fields = tf.autograph.experimental.do_not_convert(fields)

    def preprocess(ds: tf.data.Dataset) -> tf.data.Dataset:
        if spec.filter_fn is not None:
            ds = ds.filter(spec.filter_fn)
        return ds.enumerate().map(fields, num_parallel_calls=tf.data.AUTOTUNE)

    return preprocess


def _passthrough(ex: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """Keys kept beside inputs/targets for postprocessors, metrics and per-example reports."""
    keep = ("idx", ANSWER_FIELD, "references")
    return {k: ex[k] for k in keep if k in ex}


def _render_preprocessor(template: Template) -> Callable[[tf.data.Dataset], tf.data.Dataset]:
    def render(ex):
        return {
            "inputs": templates.render_inputs_tf(template, ex),
            "targets": templates.render_targets_tf(template, ex),
            **_passthrough(ex),
        }

    return lambda ds: ds.map(render, num_parallel_calls=tf.data.AUTOTUNE)


def template_choice(idx: tf.Tensor, num_templates: int, seed: int) -> tf.Tensor:
    """Template index for the example at stream position ``idx``.

    Positions are split into blocks of ``num_templates``; each block uses a permutation of the
    templates drawn from (seed, block). Every template is used exactly once per block (even
    coverage) and the choice depends only on (seed, idx) (reproducible).
    """
    idx = tf.cast(idx, tf.int64)
    block = idx // num_templates
    noise = tf.random.stateless_uniform([num_templates], seed=tf.stack([seed, block]))
    return tf.gather(tf.argsort(noise), idx % num_templates)


def _mix_preprocessor(spec: TaskSpec, seed: int) -> Callable[[tf.data.Dataset], tf.data.Dataset]:
    n = len(spec.templates)

    def render(ex):
        choice = template_choice(ex["idx"], n, seed)
        inputs = tf.stack([templates.render_inputs_tf(t, ex) for t in spec.templates])
        targets = tf.stack([templates.render_targets_tf(t, ex) for t in spec.templates])
        return {
            "inputs": tf.gather(inputs, choice),
            "targets": tf.gather(targets, choice),
            "template": tf.cast(choice, tf.int32),
            **_passthrough(ex),
        }

    return lambda ds: ds.map(render, num_parallel_calls=tf.data.AUTOTUNE)


def _rank_preprocessor(template: Template) -> Callable[[tf.data.Dataset], tf.data.Dataset]:
    def rows(ex):
        options = ex[OPTIONS_FIELD]
        n = tf.shape(options)[0]
        inputs = templates.render_inputs_tf(template, ex)
        # String joins broadcast: binding `answer` to the options vector renders every target.
        targets = templates.render_targets_tf(template, {**ex, ANSWER_FIELD: options})
        if "references" in ex:
            # Several gold answers (ReCoRD): an option is correct when it is any of them.
            gold = tf.reshape(ex["references"], [-1])
            correct = tf.reduce_any(tf.equal(options[:, None], gold[None, :]), axis=1)
        else:
            correct = tf.equal(options, ex[ANSWER_FIELD])
        rows = {
            "inputs": tf.fill([n], inputs),
            "targets": targets,
            "idx": tf.fill([n], ex["idx"]),
            "option_index": tf.range(n),
            "is_correct": correct,
        }
        if GROUP_FIELD in ex:
            rows[GROUP_FIELD] = tf.fill([n], tf.cast(ex[GROUP_FIELD], tf.int64))
        return tf.data.Dataset.from_tensor_slices(rows)

    return lambda ds: ds.flat_map(rows)


def rank_postprocessor(target: Any, example: Mapping[str, Any] | None = None, is_target=False):
    """For rank tasks the 'target' seen by metrics is (example id, option index, is correct),
    plus the example's ``group`` as a 4th field when its dataset has one."""
    if not is_target:
        return target
    row = int(example["idx"]), int(example["option_index"]), bool(example["is_correct"])
    if GROUP_FIELD in example:
        return (*row, int(example[GROUP_FIELD]))
    return row


def _text_postprocessor(spec: TaskSpec) -> Callable[..., Any]:
    def postprocess(text: Any, example: Mapping[str, Any] | None = None, is_target=False):
        text = text.decode() if isinstance(text, bytes) else text
        text = text.strip()
        if spec.postprocessor is not None:
            return spec.postprocessor(text, example=example, is_target=is_target)
        return text

    return postprocess


# ---------------------------------------------------------------------------------------------
# Collections and the cluster registry.


@dataclasses.dataclass(frozen=True)
class OverlapRule:
    """Two datasets that share examples, matched by a normalized text key of their raw examples.

    When one of them is evaluated held out, the other's training task drops every example whose
    key occurs in the held-out dataset's eval splits (``mixing.overlap_filter``).
    """

    dataset_a: str
    key_a: Callable[[Mapping[str, tf.Tensor]], tf.Tensor]
    dataset_b: str
    key_b: Callable[[Mapping[str, tf.Tensor]], tf.Tensor]
    why: str = ""

    def partner(self, dataset: str) -> tuple[str, Callable, Callable] | None:
        """(other dataset, this side's key fn, other side's key fn) if ``dataset`` is a side."""
        if dataset == self.dataset_a:
            return self.dataset_b, self.key_a, self.key_b
        if dataset == self.dataset_b:
            return self.dataset_a, self.key_b, self.key_a
        return None


@dataclasses.dataclass(frozen=True)
class Collection:
    """A registered set of task specs with its clusters and held-out exclusion rules.

    ``exclusions[c]`` lists the clusters dropped from training whenever ``c`` is held out (e.g.
    FLAN drops Paraphrase with NLI). ``cluster_order`` is the order clusters are added in the
    cluster-count ablation.
    """

    name: str
    specs: tuple[TaskSpec, ...]
    vocabulary: seqio.Vocabulary
    exclusions: Mapping[str, tuple[str, ...]]
    template_seed: int
    cluster_order: tuple[str, ...] = ()
    overlaps: tuple[OverlapRule, ...] = ()

    @property
    def clusters(self) -> tuple[str, ...]:
        """Cluster names in first-appearance order."""
        return tuple(dict.fromkeys(s.cluster for s in self.specs))

    def datasets(self, cluster: str | None = None) -> tuple[TaskSpec, ...]:
        if cluster is not None:
            self.check_cluster(cluster)
        return tuple(s for s in self.specs if cluster is None or s.cluster == cluster)

    def spec(self, dataset: str) -> TaskSpec:
        for s in self.specs:
            if s.name == dataset:
                return s
        raise RegistryError(
            f"unknown dataset '{dataset}' in collection '{self.name}'; known: "
            + ", ".join(s.name for s in self.specs)
        )

    def check_cluster(self, cluster: str) -> None:
        if cluster not in self.clusters:
            raise RegistryError(
                f"unknown cluster '{cluster}' in collection '{self.name}'; known clusters: "
                + ", ".join(self.clusters)
            )


# Collections registered in this process, by name (seqio's registries are process-global too).
_COLLECTIONS: dict[str, Collection] = {}

_TOKENIZE = (seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim)


def output_features(vocabulary: seqio.Vocabulary) -> dict[str, seqio.Feature]:
    """The seqio features of every task: inputs and targets, both ending in EOS."""
    return {
        "inputs": hf_vocab.inputs_feature(vocabulary),  # a chat template, if on, goes here
        "targets": seqio.Feature(vocabulary, add_eos=True),
    }


def register_collection(
    name: str,
    specs: Sequence[TaskSpec],
    vocabulary: seqio.Vocabulary,
    *,
    exclusions: Mapping[str, Sequence[str]] | None = None,
    template_seed: int = 0,
    cluster_order: Sequence[str] = (),
    overlaps: Sequence[OverlapRule] = (),
) -> Collection:
    """Registers every spec's seqio tasks (see module docstring) and the collection itself.

    ``cluster_order`` fixes the order of the cluster-count ablation (default: first appearance);
    ``overlaps`` names dataset pairs that share examples (see ``OverlapRule``). Everything is
    checked before anything is registered, so a bad call leaves the registries untouched.
    """
    naming.check_ident("collection", name)
    if name in _COLLECTIONS:
        raise RegistryError(
            f"collection '{name}' is already registered; pick another name or register it "
            "only once (flan_jax.catalog registers each tasks/ module once)"
        )
    seen: set[str] = set()
    for s in specs:
        if s.name in seen:
            raise RegistryError(f"dataset '{s.name}' appears twice in collection '{name}'")
        seen.add(s.name)
    clusters = {s.cluster for s in specs}
    exclusions = {k: tuple(v) for k, v in (exclusions or {}).items()}
    for key, dropped in exclusions.items():
        for c in (key, *dropped):
            if c not in clusters:
                raise RegistryError(
                    f"exclusion rule for '{key}' names unknown cluster '{c}' in collection "
                    f"'{name}'; known clusters: {', '.join(sorted(clusters))}"
                )
    for rule in overlaps:
        for d in (rule.dataset_a, rule.dataset_b):
            if d not in seen:
                raise RegistryError(f"overlap rule names unknown dataset '{d}' in '{name}'")
    order = tuple(cluster_order) or tuple(dict.fromkeys(s.cluster for s in specs))
    if sorted(order) != sorted(clusters):
        raise RegistryError(
            f"cluster_order of '{name}' must list each cluster once: {', '.join(sorted(clusters))}"
        )

    features = output_features(vocabulary)
    planned = []
    for spec in specs:
        source = spec.source.make(spec.splits)
        fields = _fields_preprocessor(spec)
        text_post = _text_postprocessor(spec)

        tasks = []
        if spec.trains:  # eval-only datasets have no training task
            tasks.append(
                (
                    naming.task_name(name, spec.name),
                    _mix_preprocessor(spec, template_seed),
                    text_post,
                    spec.metrics,
                )
            )
        for i, t in enumerate(spec.templates):
            tasks.append(
                (
                    naming.task_name(name, spec.name, i),
                    _render_preprocessor(t),
                    text_post,
                    spec.metrics,
                )
            )
            if spec.has_options and t.is_rankable:
                tasks.append(
                    (
                        naming.task_name(name, spec.name, i, rank=True),
                        _rank_preprocessor(t),
                        rank_postprocessor,
                        spec.rank_metrics,
                    )
                )
        planned += [(source, fields, *task) for task in tasks]
    # Check every name before registering any, so a clash leaves the registry untouched.
    for _, _, task, *_ in planned:
        if task in seqio.TaskRegistry.names():
            raise RegistryError(f"task '{task}' is already registered; rename the dataset")
    for source, fields, task, render, postprocess_fn, metric_fns in planned:
        seqio.TaskRegistry.add(
            task,
            source=source,
            preprocessors=[fields, render, *_TOKENIZE],
            output_features=features,
            postprocess_fn=postprocess_fn,
            metric_fns=list(metric_fns),
        )

    collection = Collection(
        name, tuple(specs), vocabulary, exclusions, template_seed, order, tuple(overlaps)
    )
    _COLLECTIONS[name] = collection
    return collection


def add_training_task(
    name: str,
    spec: TaskSpec,
    vocabulary: seqio.Vocabulary,
    *,
    template_seed: int,
    raw_filters: Sequence[Callable[[tf.data.Dataset], tf.data.Dataset]] = (),
) -> seqio.Task:
    """Adds one mixed-template training task over ``spec`` (a variant of ``<c>:<d>:mix``).

    ``raw_filters`` run on the raw examples before anything else (e.g. overlap removal);
    ``flan_jax.mixing`` builds the variants and their names.
    """
    return seqio.TaskRegistry.add(
        name,
        source=spec.source.make(spec.splits),
        preprocessors=[
            *raw_filters,
            _fields_preprocessor(spec),
            _mix_preprocessor(spec, template_seed),
            *_TOKENIZE,
        ],
        output_features=output_features(vocabulary),
        postprocess_fn=_text_postprocessor(spec),
        metric_fns=list(spec.metrics),
    )


def registered_collection(name: str) -> Collection | None:
    """The collection registered under ``name`` in this process, if any (imports nothing)."""
    return _COLLECTIONS.get(name)


def collections() -> dict[str, Collection]:
    """Every collection registered in this process, by name."""
    return dict(_COLLECTIONS)
