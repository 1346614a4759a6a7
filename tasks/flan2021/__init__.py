"""The FLAN 2021 collection: 12 task clusters, 70 datasets from TFDS, our own templates.

One module per cluster holds its datasets' ``TaskSpec``s (raw-field mapping, templates, metric,
FLAN's split convention); this module registers them all as collection ``flan2021``. Registering
does no I/O: each TFDS builder is opened when one of its splits is first read (and fails with one
line naming the builder and data dir if it is not prepared there). See
``docs/flan2021_datacard.md`` (``flan-jax datacard``) for the table of datasets.

``register(vocabulary)`` registers the collection; ``flan_jax.catalog`` calls it once, with the
run's vocabulary, when a ``flan2021:...`` name is first looked up. Mixtures (leave-one-cluster-out,
ablations) are registered by ``flan_jax.mixtures.flan2021``.
"""

from __future__ import annotations

import seqio

from flan_jax import flan_templates
from flan_jax.registry import Collection, OverlapRule, register_collection

from . import (
    closed_book_qa,
    commonsense,
    coreference,
    misc,
    nli,
    paraphrase,
    reading_comprehension,
    reading_comprehension_commonsense,
    sentiment,
    struct_to_text,
    summarization,
    translation,
)
from .flan_reference import DIFFERENCE_REASONS, FLAN  # noqa: F401  (the data card reads them)

CLUSTER_MODULES = (
    nli,
    commonsense,
    sentiment,
    paraphrase,
    closed_book_qa,
    struct_to_text,
    translation,
    reading_comprehension,
    reading_comprehension_commonsense,
    coreference,
    misc,
    summarization,
)
SPECS = tuple(spec for module in CLUSTER_MODULES for spec in module.SPECS)

# Holding out a cluster also drops its close relatives from training (FLAN's rule).
EXCLUSIONS = {
    "nli": ("paraphrase",),
    "paraphrase": ("nli",),
    "reading_comprehension": ("reading_comprehension_commonsense",),
    "commonsense": ("reading_comprehension_commonsense",),
    "reading_comprehension_commonsense": ("reading_comprehension", "commonsense"),
}

# Cluster-count ablation: ``mixtures/flan2021.py`` registers FLAN's groups for the paper's
# held-out set (its 7th group is conversational QA, CoQA and QuAC, not all of misc).
# The order clusters are added in for other held-out sets (``:clusters<n>`` on demand): the
# paper's order above, then the rest.
CLUSTER_ORDER = (
    "summarization",
    "translation",
    "reading_comprehension",
    "sentiment",
    "struct_to_text",
    "coreference",
    "misc",
    "paraphrase",
    "nli",
    "commonsense",
    "reading_comprehension_commonsense",
    "closed_book_qa",
)


def _field(name: str):
    return lambda ex: ex[name]


# Dataset pairs that share examples across clusters (same-cluster pairs such as SQuAD v1/v2 or
# MNLI/ANLI are held out together and need no rule). Keys are compared after lower-casing and
# removing everything but letters and digits (``mixing.normalized_key_hash``).
OVERLAPS = (
    OverlapRule(
        "qnli",
        _field("question"),
        "squad_v1",
        _field("question"),
        why="QNLI was built from SQuAD v1.1 questions and passages",
    ),
    OverlapRule(
        "qnli",
        _field("question"),
        "squad_v2",
        _field("question"),
        why="SQuAD v2.0 contains the SQuAD v1.1 questions",
    ),
    OverlapRule(
        "wnli",
        _field("sentence1"),
        "wsc",
        _field("text"),
        why="WNLI premises are Winograd schema sentences, as are WSC's texts",
    ),
)


def register(vocabulary: seqio.Vocabulary, templates: str | None = None) -> Collection:
    """Registers the FLAN 2021 tasks with ``vocabulary`` (``flan_jax.catalog`` calls it once).

    ``templates``: a FLAN ``flan/templates.py`` whose templates replace ours (read as data by
    ``flan_jax.flan_templates``; ``--templates=flan:PATH``), under the same task names.
    """
    specs = SPECS if templates is None else flan_templates.apply(SPECS, templates).specs
    return register_collection(
        "flan2021",
        specs,
        vocabulary,
        exclusions=EXCLUSIONS,
        cluster_order=CLUSTER_ORDER,
        overlaps=OVERLAPS,
    )


# Official train-split sizes (public dataset statistics; the data card's "train size" column and
# ``flan-jax inspect``'s planned rates without prepared data). FLAN trains on what its split
# string selects (e.g. min(n - dev, 30,000)). Story Cloze counts its validation stories (it has
# no train split); the ParaCrawl en-da count is the English-Danish pairs the three text
# formatting tasks slice. Sizes of millions only need to exceed the slices FLAN takes.
TRAIN_SIZES = {
    "anli_r1": 16_946,
    "anli_r2": 45_460,
    "anli_r3": 100_459,
    "cb": 250,
    "mnli_matched": 392_702,
    "mnli_mismatched": 392_702,
    "qnli": 104_743,
    "rte": 2_490,
    "snli": 550_152,
    "wnli": 635,
    "copa": 400,
    "hellaswag": 39_905,
    "piqa": 16_113,
    "story_cloze": 1_871,
    "imdb_reviews": 25_000,
    "sentiment140": 1_600_000,
    "sst2": 67_349,
    "yelp_polarity_reviews": 560_000,
    "mrpc": 3_668,
    "qqp": 363_846,
    "paws_wiki": 49_401,
    "stsb": 5_749,
    "arc_easy": 2_251,
    "arc_challenge": 1_119,
    "natural_questions": 87_925,
    "trivia_qa": 138_384,
    "common_gen": 67_389,
    "dart": 62_659,
    "e2e_nlg": 33_525,
    "web_nlg_en": 35_426,
    "para_crawl_en_es": 21_987_267,
    "wmt14_fr_en": 40_836_876,
    "wmt16_cs_en": 997_712,
    "wmt16_de_en": 4_548_885,
    "wmt16_fi_en": 2_073_394,
    "wmt16_ro_en": 610_320,
    "wmt16_ru_en": 1_516_162,
    "wmt16_tr_en": 205_756,
    "bool_q": 9_427,
    "drop": 77_409,
    "multirc": 27_243,
    "openbookqa": 4_957,
    "squad_v1": 87_599,
    "squad_v2": 130_319,
    "cosmos_qa": 25_262,
    "record": 100_730,
    "definite_pronoun_resolution": 1_322,
    "winogrande": 40_398,
    "wsc": 554,
    "coqa": 7_199,
    "quac": 83_568,
    "trec": 5_452,
    "cola": 8_551,
    "wic": 5_428,
    "math_dataset": 1_999_998,
    "fix_punct": 7_000_000,
    "true_case": 7_000_000,
    "word_segment": 7_000_000,
    "aeslc": 14_436,
    "ag_news_subset": 120_000,
    "cnn_dailymail": 287_113,
    "gigaword": 3_803_957,
    "multi_news": 44_972,
    "newsroom": 995_041,
    "opinion_abstracts_idebate": 2_259,
    "opinion_abstracts_rotten_tomatoes": 3_731,
    "samsum": 14_732,
    "wiki_lingua_english_en": 99_020,
    "xsum": 203_577,
}
