"""Mixtures of the FLAN 2021 collection: leave-one-cluster-out training, held-out evaluation,
and the paper's ablations.

Registered (no I/O; rates are computed when a mixture is first read):
- for each of the 12 clusters C: ``flan2021:heldout_C:train`` (every cluster but C and the
  clusters FLAN's exclusion rules drop with it) and ``flan2021:heldout_C:eval`` (C's zero-shot
  templates; rank classification where a template shows options);
- ``flan2021:all:train`` (every cluster);
- few-shot, built on first lookup (``flan_jax.catalog``; FLAN's ``few_shot.py`` protocol):
  ``flan2021:heldout_C:train_fewshot`` (the training mixture's tasks with up to 16 exemplars
  each, FLAN's multi-shot, same rates) and ``flan2021:heldout_C:eval_<k>shot`` (the eval
  mixture's tasks, k exemplars each), exemplars from each dataset's whole train split within
  960 input tokens;
- ablations on the paper's held-out set NLI + closed-book QA + commonsense (``ABLATION_HELDOUT``):
  ``...:train:tpl<n>`` for n in 1, 2, 4, 7, 10 (each dataset's first n templates; training tasks
  ``flan2021:<d>:mix:tpl<n>``) and ``...:train:clusters<n>`` for n in 1..7 (FLAN's first n
  groups, ``ABLATION_GROUPS``: summarization, translation, reading comprehension, sentiment,
  struct-to-text, coreference, conversational QA = CoQA + QuAC).

Overlap removal is off, as in FLAN (which removes nothing). Where a training dataset shares
examples with a held-out dataset of another cluster (``OVERLAPS`` in the task package: QNLI <->
SQuAD v1.1/v2.0 by question text, WNLI <-> WSC by sentence text), its ``:dedup_<clusters>``
training variant drops the examples whose normalized key occurs in the held-out dataset's
validation or test split: ask for it by name (e.g. ``flan2021:qnli:mix:dedup_reading_comprehension``)
or build mixtures with ``mixing.register_heldout_mixtures(..., dedup_overlaps=True)``.

Rates: min(number of train examples, 30,000 cap, 3,000 max rate) per dataset (train splits are
already capped at 30k by FLAN's split convention).
"""

from __future__ import annotations

import dataclasses

import seqio

from flan_jax import mixing
from flan_jax.mixing import MixturePlan, register_all_heldout_mixtures, register_heldout_mixtures
from flan_jax.registry import Collection

ABLATION_HELDOUT = ("nli", "closed_book_qa", "commonsense")
TEMPLATE_COUNTS = (1, 2, 4, 7, 10)
CLUSTER_COUNTS = (1, 2, 3, 4, 5, 6, 7)
# FLAN's cluster-count ablation (``generate_inter_ablation``): training groups added one at a
# time. FLAN's clusters are finer than the paper's twelve: its 7th group, conversational QA, is
# CoQA and QuAC of our misc cluster (None: the whole cluster).
ABLATION_GROUPS: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    # (FLAN's group, our cluster, its datasets or None for the whole cluster)
    ("summarization", "summarization", None),
    ("translation", "translation", None),
    ("reading_comprehension", "reading_comprehension", None),
    ("sentiment", "sentiment", None),
    ("structure_to_text", "struct_to_text", None),
    ("coreference", "coreference", None),
    ("conversational_qa", "misc", ("coqa", "quac")),
)


def register_cluster_ablation(collection: Collection, n: int) -> MixturePlan:
    """``...:train:clusters<n>`` of the paper's held-out set: FLAN's first n groups."""
    base = mixing.plan_heldout(collection, ABLATION_HELDOUT)
    keep = set()
    for _, cluster, datasets in ABLATION_GROUPS[:n]:
        keep |= {
            s.name for s in collection.datasets(cluster) if datasets is None or s.name in datasets
        }
    plan = dataclasses.replace(
        base,
        train_datasets=tuple(s for s in base.train_datasets if s.name in keep),
        num_clusters=n,
    )

    def rate(task: seqio.Task) -> float:
        n_train = task.num_input_examples("train") or 0
        return mixing.examples_proportional_rate(n_train, plan.cap, plan.max_rate)

    if plan.train_name not in seqio.MixtureRegistry.names():
        seqio.MixtureRegistry.add(plan.train_name, [(t, rate) for t in plan.train_tasks])
    return plan


def register(collection: Collection) -> list[MixturePlan]:
    """Registers every mixture above (``flan_jax.catalog`` calls it after the tasks)."""
    plans = register_all_heldout_mixtures(collection)
    plans.append(register_heldout_mixtures(collection, ABLATION_HELDOUT))
    plans += [
        register_heldout_mixtures(collection, ABLATION_HELDOUT, num_templates=n)
        for n in TEMPLATE_COUNTS
    ]
    plans += [register_cluster_ablation(collection, n) for n in CLUSTER_COUNTS]
    return plans
