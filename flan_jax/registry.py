"""Declarative task specs, turned into real ``seqio.Task``s by one registration function.

A ``TaskSpec`` says where a dataset's raw examples come from, how a raw example maps to template
fields (``fields_fn``), which templates render it, and how it is scored. ``register_collection``
turns a list of specs into seqio tasks named by ``flan_jax.naming``:

- ``<c>:<d>:t<i>``: every example rendered with template i (zero-shot eval of that template);
- ``<c>:<d>:mix``: training task, each example rendered with one template chosen from
  (template seed, position in the stream), exactly even over every block of n examples;
- ``<c>:<d>:t<i>:rank``: for templates with options, one row per (example, option) with the
  example's group id ``idx`` and ``is_correct``, so a scorer can take the argmax per group.

Registration does no I/O: data sources open when a dataset is first read.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import seqio
import tensorflow as tf

from flan_jax import naming, templates
from flan_jax.evaluation import metrics as metrics_lib
from flan_jax.templates import ANSWER_FIELD, OPTIONS_FIELD, Template, TemplateError

# Our split names: `validation` is FLAN's dev split (used to pick the best template).
SPLITS = ("train", "validation", "test")
DEFAULT_SPLITS: Mapping[str, str] = {"train": "train", "validation": "validation", "test": "test"}


class RegistryError(ValueError):
    """A bad registration or lookup: duplicate, unknown name, unknown cluster."""


# ---------------------------------------------------------------------------------------------
# Data sources.


class DataUnavailableError(RegistryError):
    """A dataset's prepared TFDS data is not in the data dir (one actionable line)."""


def _data_dir_text(data_dir: str | None) -> str:
    import os

    return data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets (default)"


@dataclasses.dataclass(frozen=True)
class TfdsSource:
    """A TFDS builder, e.g. ``"glue/rte:2.0.0"``; opened lazily when a split is first read.

    Reading never downloads: a builder that is not prepared in the data dir (``data_dir``, else
    ``$TFDS_DATA_DIR``, else TFDS' default) fails with ``DataUnavailableError`` naming the builder,
    the data dir and, for manual-download builders, what to fetch (``manual_download``).
    """

    builder: str
    data_dir: str | None = None
    manual_download: str | None = None  # what to download and where, for manual-only builders

    def make(self, splits: Mapping[str, str]) -> seqio.DataSource:
        return _TfdsDataSource(self, splits=dict(splits))

    def unavailable_message(self, data_dir: str | None = None, why: str = "") -> str:
        where = _data_dir_text(data_dir or self.data_dir)
        msg = f"TFDS dataset '{self.builder}' is not prepared in data_dir {where}"
        if why:
            msg += f" ({why})"
        if self.manual_download:
            return f"{msg}; it needs a manual download: {self.manual_download}"
        return (
            f"{msg}; prepare it with `tfds build {self.builder} --data_dir=...` on a machine "
            "with network access, or pass the data_dir that holds it"
        )

    def status(self, data_dir: str | None = None) -> str:
        """``present``, ``missing`` or ``manual`` (missing and needs a manual download).

        Only looks for the prepared builder directory; never downloads.
        """
        import tensorflow_datasets as tfds

        try:
            builder = tfds.builder(self.builder, data_dir=data_dir or self.data_dir)
            if builder.is_prepared():
                return "present"
        except Exception:  # unknown builder / unreadable metadata: not usable as is
            pass
        return "manual" if self.manual_download else "missing"


class _TfdsDataSource(seqio.TfdsDataSource):
    """seqio's TFDS source that reads prepared data only and fails with one clear line."""

    def __init__(self, spec: TfdsSource, splits: Mapping[str, str]):
        super().__init__(tfds_name=spec.builder, tfds_data_dir=spec.data_dir, splits=splits)
        self._spec = spec

    def get_dataset(
        self,
        split: str | None = None,
        shuffle: bool = True,
        seed: int | None = None,
        shard_info: Any = None,
        **kwargs: Any,
    ) -> tf.data.Dataset:
        import tensorflow_datasets as tfds

        split = split or "train"
        try:
            builder = self.tfds_dataset.builder
        except Exception as e:  # unknown builder or config, unreadable metadata
            raise DataUnavailableError(
                self._spec.unavailable_message(why=f"{type(e).__name__}: {e}".split("\n")[0])
            ) from None
        read_config = tfds.ReadConfig(shuffle_seed=seed, skip_prefetch=True)
        if shard_info:
            read_config.input_context = tf.distribute.InputContext(
                num_input_pipelines=shard_info.num_shards, input_pipeline_id=shard_info.index
            )
        try:
            return builder.as_dataset(
                split=self.tfds_dataset._map_split(split),
                shuffle_files=shuffle,
                read_config=read_config,
            )
        except (AssertionError, FileNotFoundError, tf.errors.NotFoundError) as e:
            raise DataUnavailableError(
                self._spec.unavailable_message(str(builder.data_dir_root))
            ) from e

    def num_input_examples(self, split: str) -> int | None:
        """Split size from the prepared metadata; None when unknown (unprepared or mocked)."""
        try:
            return super().num_input_examples(split)
        except Exception:
            return None


@dataclasses.dataclass(frozen=True)
class FunctionSource:
    """Raw examples from a function ``fn(source_split) -> tf.data.Dataset`` of known sizes."""

    fn: Callable[[str], tf.data.Dataset]
    sizes: Mapping[str, int]

    def make(self, splits: Mapping[str, str]) -> seqio.DataSource:
        def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
            del shuffle_files, seed  # generated data has a fixed order
            return self.fn(splits[split])

        return seqio.FunctionDataSource(
            dataset_fn,
            splits=list(splits),
            num_input_examples={ours: self.sizes[theirs] for ours, theirs in splits.items()},
        )


Source = TfdsSource | FunctionSource


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
        return tf.data.Dataset.from_tensor_slices(
            {
                "inputs": tf.fill([n], inputs),
                "targets": targets,
                "idx": tf.fill([n], ex["idx"]),
                "option_index": tf.range(n),
                "is_correct": tf.equal(options, ex[ANSWER_FIELD]),
            }
        )

    return lambda ds: ds.flat_map(rows)


def rank_postprocessor(target: Any, example: Mapping[str, Any] | None = None, is_target=False):
    """For rank tasks the 'target' seen by metrics is (group id, option index, is correct)."""
    if not is_target:
        return target
    return int(example["idx"]), int(example["option_index"]), bool(example["is_correct"])


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


_COLLECTIONS: dict[str, Collection] = {}


def output_features(vocabulary: seqio.Vocabulary) -> dict[str, seqio.Feature]:
    return {
        "inputs": seqio.Feature(vocabulary, add_eos=True, required=False),
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
    ``overlaps`` names dataset pairs that share examples (see ``OverlapRule``).
    """
    naming.check_ident("collection", name)
    if name in _COLLECTIONS:
        raise RegistryError(
            f"collection '{name}' is already registered; pick another name or import the "
            "module that registers it only once"
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

    features = output_features(vocabulary)
    tokenize = [seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim]
    planned = []
    for spec in specs:
        source = spec.source.make(spec.splits)
        fields = _fields_preprocessor(spec)
        text_post = _text_postprocessor(spec)

        tasks = [
            (
                naming.task_name(name, spec.name),
                _mix_preprocessor(spec, template_seed),
                text_post,
                spec.metrics,
            )
        ]
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
            preprocessors=[fields, render, *tokenize],
            output_features=features,
            postprocess_fn=postprocess_fn,
            metric_fns=list(metric_fns),
        )

    names = {s.name for s in specs}
    for rule in overlaps:
        for d in (rule.dataset_a, rule.dataset_b):
            if d not in names:
                raise RegistryError(f"overlap rule names unknown dataset '{d}' in '{name}'")
    order = tuple(cluster_order) or tuple(dict.fromkeys(s.cluster for s in specs))
    if sorted(order) != sorted(clusters):
        raise RegistryError(
            f"cluster_order of '{name}' must list each cluster once: {', '.join(sorted(clusters))}"
        )
    collection = Collection(
        name, tuple(specs), vocabulary, exclusions, template_seed, order, tuple(overlaps)
    )
    _COLLECTIONS[name] = collection
    return collection


def register_training_variant(
    collection: Collection,
    dataset: str,
    *,
    num_templates: int | None = None,
    dedup: Sequence[str] = (),
) -> str:
    """Registers ``<c>:<d>:mix[:tpl<n>][:dedup_<clusters>]`` if new; returns its name.

    ``num_templates`` keeps the first n templates (template-count ablation); ``dedup`` drops the
    examples that overlap the eval data of those held-out clusters (the collection's
    ``overlaps``). Registration does no I/O; the overlap keys are read when the task is read.
    """
    spec = collection.spec(dataset)
    name = naming.task_name(collection.name, dataset, num_templates=num_templates, dedup=dedup)
    if name in seqio.TaskRegistry.names():
        return name
    if num_templates is not None:
        if not 1 <= num_templates:
            raise RegistryError(f"num_templates must be >= 1, got {num_templates}")
        spec = dataclasses.replace(spec, templates=spec.templates[:num_templates])
    raw_filters = []
    if dedup:
        from flan_jax import mixing  # the overlap filter reads other datasets: mixing's concern

        raw_filters = mixing.overlap_filters(collection, dataset, dedup)
    seqio.TaskRegistry.add(
        name,
        source=spec.source.make(spec.splits),
        preprocessors=[
            *raw_filters,
            _fields_preprocessor(spec),
            _mix_preprocessor(spec, collection.template_seed),
            seqio.preprocessors.tokenize,
            seqio.preprocessors.append_eos_after_trim,
        ],
        output_features=output_features(collection.vocabulary),
        postprocess_fn=_text_postprocessor(spec),
        metric_fns=list(spec.metrics),
    )
    return name


def register_fewshot_task(name: str, **kwargs: Any) -> seqio.Task:
    """Registers the few-shot task ``...:<k>shot`` from its zero-shot base (see fewshot.py)."""
    from flan_jax import fewshot

    return fewshot.register_fewshot_task(name, **kwargs)


def get_collection(name: str) -> Collection:
    """The registered collection, importing its module from ``tasks/`` on first use."""
    if name not in _COLLECTIONS:
        import_collection(name)
    if name not in _COLLECTIONS:
        raise RegistryError(
            f"module for collection '{name}' did not register it; call register_collection"
        )
    return _COLLECTIONS[name]


def collections() -> dict[str, Collection]:
    return dict(_COLLECTIONS)


def import_collection(name: str) -> None:
    """Imports ``flan_jax.mixtures.<name>`` (which registers tasks too), else the tasks module."""
    naming.check_ident("collection", name)
    for module in (f"flan_jax.mixtures.{name}", f"flan_jax.tasks.{name}"):
        try:
            importlib.import_module(module)
            return
        except ModuleNotFoundError as e:
            if e.name not in (module, module.rsplit(".", 1)[0] + "." + name):
                raise
    raise RegistryError(
        f"no collection '{name}': neither tasks/{name}.py nor mixtures/{name}.py exists; "
        f"known collections: {', '.join(available_collections()) or 'none'}"
    )


def available_collections() -> list[str]:
    """Collections that can be imported: modules in the installed tasks/ package."""
    import pkgutil

    import flan_jax.tasks

    return sorted(m.name for m in pkgutil.iter_modules(flan_jax.tasks.__path__))


def get_task_or_mixture(name: str) -> seqio.Task | seqio.Mixture:
    """Looks a task or mixture up by name, registering its collection first."""
    try:
        parsed = naming.parse_name(name)
    except naming.InvalidNameError as e:
        raise RegistryError(f"unknown task or mixture '{name}': {e}") from None
    get_collection(parsed.collection)
    if parsed.is_mixture and name in seqio.MixtureRegistry.names():
        return seqio.MixtureRegistry.get(name)
    if not parsed.is_mixture and name in seqio.TaskRegistry.names():
        return seqio.TaskRegistry.get(name)
    if not parsed.is_mixture:
        # Training variants and few-shot tasks are registered on first lookup.
        collection = get_collection(parsed.collection)
        if parsed.template is None and (parsed.num_templates or parsed.dedup):
            collection.spec(parsed.dataset)
            register_training_variant(
                collection,
                parsed.dataset,
                num_templates=parsed.num_templates,
                dedup=parsed.dedup,
            )
        if parsed.shots:
            collection.spec(parsed.dataset)
            return register_fewshot_task(name)
        if name in seqio.TaskRegistry.names():
            return seqio.TaskRegistry.get(name)
    if parsed.is_mixture:
        # Held-out mixtures of any cluster combination are built on demand.
        from flan_jax import mixing

        collection = get_collection(parsed.collection)
        mixing.register_heldout_mixtures(
            collection,
            parsed.heldout,
            num_templates=parsed.num_templates,
            num_clusters=parsed.num_clusters,
        )
        if name in seqio.MixtureRegistry.names():
            return seqio.MixtureRegistry.get(name)
    kind = "mixture" if parsed.is_mixture else "task"
    raise RegistryError(f"unknown {kind} '{name}'; `flan-jax list` shows the registered names")
