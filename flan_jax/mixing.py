"""Held-out-cluster mixtures: train on every other cluster, evaluate on the held-out ones.

FLAN's recipe: examples-proportional mixing where each dataset contributes
``min(n_train, cap, max_rate)`` (cap 30k examples, max rate 3k); clusters listed in the
collection's exclusion rules are dropped together with the held-out cluster; the evaluation
mixture holds every zero-shot template of the held-out clusters (rank classification where a
template shows options), weighted by the uncapped number of examples.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import seqio

from flan_jax import naming
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

    @property
    def train_name(self) -> str:
        return naming.mixture_name(self.collection, self.heldout, "train")

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
) -> MixturePlan:
    """Which datasets train and which tasks evaluate when ``heldout`` clusters are held out."""
    heldout = tuple(heldout)
    excluded = excluded_clusters(collection, heldout, extra_exclusions)
    train = tuple(s for s in collection.specs if s.cluster not in excluded)
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
    return MixturePlan(collection.name, heldout, excluded, train, tuple(eval_tasks), cap, max_rate)


def register_heldout_mixtures(
    collection: Collection,
    heldout: Sequence[str] = (),
    *,
    cap: int | None = FLAN_CAP,
    max_rate: int | None = FLAN_MAX_RATE,
    extra_exclusions: dict[str, Sequence[str]] | None = None,
) -> MixturePlan:
    """Registers the training mixture (and the eval mixture if clusters are held out).

    Rates are functions of the task, so computing them (which may read dataset metadata) waits
    until the mixture is first used.
    """
    plan = plan_heldout(
        collection, heldout, cap=cap, max_rate=max_rate, extra_exclusions=extra_exclusions
    )

    def rate(task: seqio.Task) -> float:
        return examples_proportional_rate(task.num_input_examples("train") or 0, cap, max_rate)

    def eval_rate(task: seqio.Task) -> float:
        return float(task.num_input_examples("test") or 1)

    if plan.train_name not in seqio.MixtureRegistry.names():
        members = [(naming.task_name(collection.name, s.name), rate) for s in plan.train_datasets]
        seqio.MixtureRegistry.add(plan.train_name, members)
    if plan.eval_name and plan.eval_name not in seqio.MixtureRegistry.names():
        seqio.MixtureRegistry.add(plan.eval_name, [(t, eval_rate) for t in plan.eval_tasks])
    return plan


def register_all_heldout_mixtures(collection: Collection, **kwargs) -> list[MixturePlan]:
    """Leave-one-cluster-out mixtures for every cluster, plus the all-clusters mixture."""
    plans = [register_heldout_mixtures(collection, (c,), **kwargs) for c in collection.clusters]
    plans.append(register_heldout_mixtures(collection, (), **kwargs))
    return plans
