"""Mixtures of the FLAN 2021 collection: leave-one-cluster-out training, held-out evaluation,
and the paper's ablations.

Registered (no I/O; rates are computed when a mixture is first read):
- for each of the 12 clusters C: ``flan2021:heldout_C:train`` (every cluster but C and the
  clusters FLAN's exclusion rules drop with it) and ``flan2021:heldout_C:eval`` (C's zero-shot
  templates; rank classification where a template shows options);
- ``flan2021:all:train`` (every cluster);
- ablations on the paper's held-out set NLI + closed-book QA + commonsense (``ABLATION_HELDOUT``):
  ``...:train:tpl<n>`` for n in 1, 2, 4, 7, 10 (each dataset's first n templates; training tasks
  ``flan2021:<d>:mix:tpl<n>``) and ``...:train:clusters<n>`` for n in 1..7 (the first n training
  clusters in the collection's ``cluster_order``, ``CLUSTER_ORDER`` of ``tasks/flan2021``:
  summarization, translation, reading comprehension, sentiment, struct-to-text, coreference,
  misc).

Overlap removal: where a training dataset shares examples with a held-out dataset of another
cluster (``OVERLAPS`` in the task package: QNLI <-> SQuAD v1.1/v2.0 by question text, WNLI <->
WSC by sentence text), the training mixture uses its ``:dedup_<clusters>`` variant, which drops
the training examples whose normalized key occurs in the held-out dataset's validation or test
split. E.g. ``flan2021:heldout_reading_comprehension:train`` trains on
``flan2021:qnli:mix:dedup_reading_comprehension``.

Rates: min(number of train examples, 30,000 cap, 3,000 max rate) per dataset (train splits are
already capped at 30k by FLAN's split convention).
"""

from __future__ import annotations

from flan_jax.mixing import MixturePlan, register_all_heldout_mixtures, register_heldout_mixtures
from flan_jax.registry import Collection

ABLATION_HELDOUT = ("nli", "closed_book_qa", "commonsense")
TEMPLATE_COUNTS = (1, 2, 4, 7, 10)
CLUSTER_COUNTS = (1, 2, 3, 4, 5, 6, 7)


def register(collection: Collection) -> list[MixturePlan]:
    """Registers every mixture above (``flan_jax.catalog`` calls it after the tasks)."""
    plans = register_all_heldout_mixtures(collection)
    plans.append(register_heldout_mixtures(collection, ABLATION_HELDOUT))
    plans += [
        register_heldout_mixtures(collection, ABLATION_HELDOUT, num_templates=n)
        for n in TEMPLATE_COUNTS
    ]
    plans += [
        register_heldout_mixtures(collection, ABLATION_HELDOUT, num_clusters=n)
        for n in CLUSTER_COUNTS
    ]
    return plans
