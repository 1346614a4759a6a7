"""Held-out-cluster mixtures: train on every other cluster, evaluate on the held-out ones.

Beyond FLAN's leave-one-out recipe (below), training mixtures can be restricted for the paper's
ablations: ``num_templates`` (each dataset's first n templates, ``...:train:tpl<n>``) and
``num_clusters`` (only the first n training clusters in the collection's ``cluster_order``,
``...:train:clusters<n>``). Where the collection declares ``overlaps`` (dataset pairs sharing
examples) and ``dedup_overlaps=True`` is asked for (off by default, as in FLAN), a training
dataset whose partner is held out trains on its ``:dedup_<clusters>`` variant, which drops the
examples whose key occurs in the partner's eval splits.

FLAN's recipe: examples-proportional mixing where each dataset contributes
``min(n_train, cap, max_rate)`` (cap 30k examples, max rate 3k); clusters listed in the
collection's exclusion rules are dropped together with the held-out cluster; the evaluation
mixture holds every zero-shot template of the held-out clusters (rank classification where a
template shows options), weighted by the uncapped number of examples.

This module owns the training variants too (``<c>:<d>:mix:tpl<n>``, ``...:dedup_<clusters>``):
``register_training_variant`` builds them over ``registry.add_training_task``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import seqio
import tensorflow as tf

from flan_jax import naming, registry
from flan_jax.registry import Collection, RegistryError, TaskSpec

FLAN_CAP = 30_000
FLAN_MAX_RATE = 3_000


def examples_proportional_rate(num_examples: int, cap: int | None, max_rate: int | None) -> float:
    """``min(n, cap, max_rate)``: the per-dataset weight of examples-proportional mixing."""
    rate = num_examples
    if cap is not None:
        rate = min(rate, cap)
    if max_rate is not None:
        rate = min(rate, max_rate)
    return float(rate)


def excluded_clusters(
    collection: Collection,
    heldout: Sequence[str],
    extra_exclusions: dict[str, Sequence[str]] | None = None,
) -> tuple[str, ...]:
    """Held-out clusters plus those the exclusion rules drop with them, in collection order."""
    if not heldout:
        return ()
    rules = {k: tuple(v) for k, v in collection.exclusions.items()}
    for k, v in (extra_exclusions or {}).items():
        rules[k] = rules.get(k, ()) + tuple(v)
    dropped = set()
    for c in heldout:
        collection.check_cluster(c)
        dropped |= {c, *rules.get(c, ())}
    return tuple(c for c in collection.clusters if c in dropped)


@dataclasses.dataclass(frozen=True)
class MixturePlan:
    """What a held-out experiment trains and evaluates on (pure data; nothing registered)."""

    collection: str
    heldout: tuple[str, ...]
    excluded: tuple[str, ...]
    train_datasets: tuple[TaskSpec, ...]
    eval_tasks: tuple[str, ...]
    cap: int | None
    max_rate: int | None
    num_templates: int | None = None
    num_clusters: int | None = None
    dedup: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    @property
    def train_name(self) -> str:
        return naming.mixture_name(
            self.collection,
            self.heldout,
            "train",
            templates=self.num_templates,
            clusters=self.num_clusters,
        )

    @property
    def train_tasks(self) -> tuple[str, ...]:
        """Member task names of the training mixture (ablation and dedup variants included)."""
        return tuple(
            naming.task_name(
                self.collection,
                s.name,
                num_templates=self.num_templates,
                dedup=self.dedup.get(s.name, ()),
            )
            for s in self.train_datasets
        )

    @property
    def eval_name(self) -> str | None:
        return naming.mixture_name(self.collection, self.heldout, "eval") if self.heldout else None


def plan_heldout(
    collection: Collection,
    heldout: Sequence[str] = (),
    *,
    cap: int | None = FLAN_CAP,
    max_rate: int | None = FLAN_MAX_RATE,
    extra_exclusions: dict[str, Sequence[str]] | None = None,
    num_templates: int | None = None,
    num_clusters: int | None = None,
    dedup_overlaps: bool = False,
) -> MixturePlan:
    """Which datasets train and which tasks evaluate when ``heldout`` clusters are held out.

    ``dedup_overlaps``: train on the ``:dedup_<clusters>`` variants of datasets that share
    examples with a held-out dataset (the collection's ``overlaps``). Off by default: FLAN
    removes no such examples.
    """
    heldout = tuple(heldout)
    excluded = excluded_clusters(collection, heldout, extra_exclusions)
    train = tuple(s for s in collection.specs if s.cluster not in excluded and s.trains)
    if num_clusters is not None:
        order = collection.cluster_order or collection.clusters
        kept = [c for c in order if c not in excluded][:num_clusters]
        if num_clusters < 1 or len(kept) < num_clusters:
            raise RegistryError(
                f"num_clusters={num_clusters} but only {len(kept)} training clusters remain "
                f"when holding out {', '.join(heldout) or 'nothing'}"
            )
        train = tuple(s for s in train if s.cluster in kept)
    if num_templates is not None and num_templates < 1:
        raise RegistryError(f"num_templates must be >= 1, got {num_templates}")
    if not train:
        raise RegistryError(
            f"holding out {', '.join(heldout)} leaves no training data in collection "
            f"'{collection.name}'; hold out fewer clusters"
        )
    eval_tasks = []
    for spec in collection.specs:
        if spec.cluster not in heldout:
            continue
        for i in spec.eval_templates:
            rank = spec.has_options and spec.templates[i].is_rankable
            eval_tasks.append(naming.task_name(collection.name, spec.name, i, rank=rank))
    dedup = {
        s.name: overlapping_heldout(collection, s.name, heldout) if dedup_overlaps else ()
        for s in train
    }
    return MixturePlan(
        collection.name,
        heldout,
        excluded,
        train,
        tuple(eval_tasks),
        cap,
        max_rate,
        num_templates,
        num_clusters,
        {k: v for k, v in dedup.items() if v},
    )


def register_heldout_mixtures(
    collection: Collection,
    heldout: Sequence[str] = (),
    *,
    cap: int | None = FLAN_CAP,
    max_rate: int | None = FLAN_MAX_RATE,
    extra_exclusions: dict[str, Sequence[str]] | None = None,
    num_templates: int | None = None,
    num_clusters: int | None = None,
    dedup_overlaps: bool = False,
) -> MixturePlan:
    """Registers the training mixture (and the eval mixture if clusters are held out).

    Rates are functions of the task, so computing them (which may read dataset metadata) waits
    until the mixture is first used.
    """
    plan = plan_heldout(
        collection,
        heldout,
        cap=cap,
        max_rate=max_rate,
        extra_exclusions=extra_exclusions,
        num_templates=num_templates,
        num_clusters=num_clusters,
        dedup_overlaps=dedup_overlaps,
    )

    def rate(task: seqio.Task) -> float:
        return examples_proportional_rate(task.num_input_examples("train") or 0, cap, max_rate)

    def eval_rate(task: seqio.Task) -> float:
        return float(task.num_input_examples("test") or 1)

    if plan.train_name not in seqio.MixtureRegistry.names():
        for s in plan.train_datasets:
            if plan.num_templates is not None or s.name in plan.dedup:
                register_training_variant(
                    collection,
                    s.name,
                    num_templates=plan.num_templates,
                    dedup=plan.dedup.get(s.name, ()),
                )
        seqio.MixtureRegistry.add(plan.train_name, [(t, rate) for t in plan.train_tasks])
    if plan.eval_name and plan.eval_name not in seqio.MixtureRegistry.names():
        seqio.MixtureRegistry.add(plan.eval_name, [(t, eval_rate) for t in plan.eval_tasks])
    return plan


def register_all_heldout_mixtures(collection: Collection, **kwargs: Any) -> list[MixturePlan]:
    """Leave-one-cluster-out mixtures for every cluster, plus the all-clusters mixture."""
    plans = [register_heldout_mixtures(collection, (c,), **kwargs) for c in collection.clusters]
    plans.append(register_heldout_mixtures(collection, (), **kwargs))
    return plans


# ---------------------------------------------------------------------------------------------
# Training variants: the template-count ablation and overlap removal.


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
    registry.add_training_task(
        name,
        spec,
        collection.vocabulary,
        template_seed=collection.template_seed,
        raw_filters=overlap_filters(collection, dataset, dedup) if dedup else (),
    )
    return name


# ---------------------------------------------------------------------------------------------
# Overlap removal between training data and held-out eval data.

OVERLAP_EVAL_SPLITS = ("validation", "test")


def overlapping_heldout(
    collection: Collection, dataset: str, heldout: Sequence[str]
) -> tuple[str, ...]:
    """Held-out clusters holding an overlap partner of ``dataset`` (empty: no dedup needed)."""
    clusters = []
    for rule in collection.overlaps:
        hit = rule.partner(dataset)
        if hit is None:
            continue
        other = collection.spec(hit[0]).cluster
        if other in heldout and other != collection.spec(dataset).cluster:
            clusters.append(other)
    return tuple(c for c in heldout if c in clusters)


def normalized_key_hash(text: tf.Tensor) -> tf.Tensor:
    """int64 fingerprint of lower-cased text with everything but letters and digits removed."""
    text = tf.strings.regex_replace(tf.strings.lower(text), r"[^\pL\pN]+", "")
    return tf.strings.to_hash_bucket_fast(text, 2**62)


def _eval_key_hashes(spec: TaskSpec, key_fn: Callable) -> tf.Tensor:
    hashes = []
    for split in OVERLAP_EVAL_SPLITS:
        if split not in spec.splits:
            continue
        ds = spec.source.make(spec.splits).get_dataset(split, shuffle=False)
        ds = ds.map(lambda ex: normalized_key_hash(key_fn(ex)), num_parallel_calls=tf.data.AUTOTUNE)
        hashes += list(ds.as_numpy_iterator())
    return tf.constant(sorted(set(hashes)) or [-1], dtype=tf.int64)


def overlap_filters(
    collection: Collection, dataset: str, heldout: Sequence[str]
) -> list[Callable[[tf.data.Dataset], tf.data.Dataset]]:
    """Raw-example filters dropping ``dataset``'s examples that occur in held-out eval data.

    Each filter reads the partner's eval splits when the training task is first read (not at
    registration) and keeps a sorted array of key fingerprints; membership is a binary search.
    """
    filters = []
    for rule in collection.overlaps:
        hit = rule.partner(dataset)
        if hit is None or collection.spec(hit[0]).cluster not in heldout:
            continue
        partner, own_key, partner_key = hit
        partner_spec = collection.spec(partner)

        def drop_overlap(ds, partner_spec=partner_spec, own_key=own_key, partner_key=partner_key):
            keys = _eval_key_hashes(partner_spec, partner_key)

            def keep(ex):
                h = normalized_key_hash(own_key(ex))
                pos = tf.searchsorted(keys, tf.reshape(h, [1]))[0]
                pos = tf.minimum(pos, tf.size(keys, out_type=pos.dtype) - 1)
                return tf.not_equal(tf.gather(keys, pos), h)

            return ds.filter(keep)

        filters.append(drop_overlap)
    return filters
