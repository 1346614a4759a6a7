"""FLAN's own facts per dataset, as data: the task name, TFDS builder, split strings and template
structure that google-research/FLAN (``flan/tasks.py``, ``flan/templates.py``) uses.

Our specs take their split strings from here; the data card's "differences from FLAN's code"
table compares every spec with this table and lists each difference with its reason
(``DIFFERENCE_REASONS``), so the table cannot drift from the registry.

Template structure is one character per template, in FLAN's order:
``O`` the original task with the options shown, ``N`` the original task without options,
``T`` turned around (asks for an input of the task given its output, or another side task).
Translation directions (``DIRECTIONS``): ``X`` into the non-English language, ``E`` into English.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

TRAIN_CAP = 30_000
DEV = 200


def _capped(test: str = "validation", dev: str | None = None) -> dict[str, str]:
    """Train capped at 30k, dev = the last 200 train examples (or ``dev``), ``test``."""
    return {"train": f"train[:{TRAIN_CAP}]", "validation": dev or f"train[-{DEV}:]", "test": test}


def _held(n: int = DEV, test: str = "validation", base: str = "train") -> dict[str, str]:
    """All but the last ``n`` examples train, the last ``n`` are dev, ``test``."""
    return {"train": f"{base}[:-{n}]", "validation": f"{base}[-{n}:]", "test": test}


_LABELLED = {"train": f"train[:{TRAIN_CAP}]", "validation": f"validation[:{DEV}]", "test": "test"}
_PARACRAWL = {
    "train": f"train[:{TRAIN_CAP}]",
    "validation": f"train[-{1000 + DEV}:-1000]",
    "test": "train[-1000:]",
}


def _enda(start: int) -> dict[str, str]:
    """The ParaCrawl en-da slices of FLAN's three text-formatting tasks (disjoint train/dev)."""
    end = start + TRAIN_CAP
    return {
        "train": f"train[{start}:{end}]" if start else f"train[:{end}]",
        "validation": f"train[{end}:{end + DEV}]",
        "test": "train[-3000:]",
    }


@dataclasses.dataclass(frozen=True)
class FlanDataset:
    """One dataset as FLAN's code defines it."""

    task: str  # FLAN's TASK_CONFIGS key
    builder: str  # FLAN's tfds_name
    splits: Mapping[str, str]  # FLAN's split strings (our names: train / validation / test)
    structure: str  # one of O / N / T per template (module docstring)
    patterns: str = ""  # FLAN's templates.PATTERNS key (default: ``task``)

    @property
    def pattern_key(self) -> str:
        return self.patterns or self.task


_NLI_T = "O" * 9 + "T"
_SUMM_2 = "N" * 8 + "TT"

FLAN: dict[str, FlanDataset] = {
    # NLI
    "anli_r1": FlanDataset(
        "anli_r1",
        "anli/r1:0.1.0",
        {"train": "train", "validation": "validation[:200]", "test": "test"},
        _NLI_T,
        "anli",
    ),
    "anli_r2": FlanDataset("anli_r2", "anli/r2:0.1.0", _LABELLED, _NLI_T, "anli"),
    "anli_r3": FlanDataset("anli_r3", "anli/r3:0.1.0", _LABELLED, _NLI_T, "anli"),
    "cb": FlanDataset("cb", "super_glue/cb:1.0.2", _held(50), _NLI_T),
    "mnli_matched": FlanDataset(
        "mnli_matched", "glue/mnli:2.0.0", _capped("validation_matched"), "O" * 10, "mnli"
    ),
    "mnli_mismatched": FlanDataset(
        "mnli_mismatched", "glue/mnli:2.0.0", _capped("validation_mismatched"), "O" * 10, "mnli"
    ),
    "qnli": FlanDataset("qnli", "glue/qnli:2.0.0", _capped(), _NLI_T),
    "rte": FlanDataset("rte", "super_glue/rte:1.0.2", _held(), _NLI_T),
    "snli": FlanDataset("snli", "snli:1.1.0", _LABELLED, _NLI_T),
    "wnli": FlanDataset("wnli", "glue/wnli:2.0.0", _held(30), "O" * 10),
    # Commonsense
    "copa": FlanDataset("copa", "super_glue/copa:1.0.2", _held(50), "O" * 8 + "TT"),
    "hellaswag": FlanDataset("hellaswag", "hellaswag:1.1.0", _capped(), "O" * 10),
    "piqa": FlanDataset("piqa", "piqa:1.0.0", _held(100), "O" * 8 + "TT"),
    "story_cloze": FlanDataset(
        "story_cloze",
        "story_cloze/2016:1.0.0",
        _held(test="test", base="validation"),
        "O" * 8 + "TT",
    ),
    # Sentiment
    "imdb_reviews": FlanDataset(
        "imdb_reviews", "imdb_reviews/plain_text:1.0.0", _held(test="test"), "O" * 7 + "TTT"
    ),
    "sentiment140": FlanDataset(
        "sentiment140", "sentiment140:1.0.0", _capped("test"), "O" * 6 + "TTTT"
    ),
    "sst2": FlanDataset("sst2", "glue/sst2:2.0.0", _capped(), "O" * 8 + "TT"),
    "yelp_polarity_reviews": FlanDataset(
        "yelp_polarity_reviews", "yelp_polarity_reviews:0.2.0", _capped("test"), "O" * 7 + "TTT"
    ),
    # Paraphrase
    "mrpc": FlanDataset("glue_mrpc", "glue/mrpc:2.0.0", _held(), "O" * 10),
    "qqp": FlanDataset("glue_qqp", "glue/qqp:2.0.0", _capped(), "O" * 10),
    # paws_wiki:1.1.0 without a config is its first config, labeled_final_tokenized.
    "paws_wiki": FlanDataset(
        "paws_wiki", "paws_wiki/labeled_final_tokenized:1.1.0", _LABELLED, "O" * 9 + "N"
    ),
    "stsb": FlanDataset("stsb", "glue/stsb:2.0.0", _held(100), "O" * 8 + "TT"),
    # Closed-book QA
    "arc_easy": FlanDataset(
        "arc_easy", "ai2_arc/ARC-Easy:1.0.0", _held(test="test"), "O" * 7 + "TTT", "arc"
    ),
    "arc_challenge": FlanDataset(
        "arc_challenge", "ai2_arc/ARC-Challenge:1.0.0", _held(test="test"), "O" * 7 + "TTT", "arc"
    ),
    "natural_questions": FlanDataset(
        "natural_questions", "natural_questions_open:1.0.0", _capped(), "N" * 10
    ),
    "trivia_qa": FlanDataset("trivia_qa", "trivia_qa/rc:1.1.0", _capped(), "N" * 10),
    # Struct to text
    "common_gen": FlanDataset("common_gen", "gem/common_gen:1.1.0", _capped(), "N" * 6 + "TTTT"),
    "dart": FlanDataset("dart", "gem/dart:1.1.0", _capped(), _SUMM_2),
    "e2e_nlg": FlanDataset("e2e_nlg", "gem/e2e_nlg:1.1.0", _capped(), "N" * 10),
    "web_nlg_en": FlanDataset("web_nlg_en", "gem/web_nlg_en:1.1.0", _capped(), _SUMM_2),
    # Translation
    "para_crawl_en_es": FlanDataset(
        "para_crawl_enes", "para_crawl/enes:1.2.0", _PARACRAWL, _SUMM_2, "para_crawl"
    ),
    "wmt14_fr_en": FlanDataset(
        "wmt14_enfr", "wmt14_translate/fr-en:1.0.0", _LABELLED, _SUMM_2, "wmt14_enfr"
    ),
    **{
        f"wmt16_{c}_en": FlanDataset(
            f"wmt16_translate_{c}en",
            f"wmt16_translate/{c}-en:1.0.0",
            _LABELLED,
            _SUMM_2,
            "wmt16_translate",
        )
        for c in ("cs", "de", "fi", "ro", "ru", "tr")
    },
    # Reading comprehension
    "bool_q": FlanDataset("bool_q", "bool_q:1.0.0", _held(), "O" * 10),
    "drop": FlanDataset("drop", "drop:2.0.0", _capped("dev"), "N" * 7 + "TTT"),
    "multirc": FlanDataset("multirc", "super_glue/multirc:1.0.2", _held(), "O" * 8 + "TT"),
    "openbookqa": FlanDataset(
        "openbookqa",
        "openbookqa:0.1.0",
        {"train": "train", "validation": "validation[:200]", "test": "test"},
        "O" * 7 + "TTT",
    ),
    "squad_v1": FlanDataset("squad_v1", "squad/v1.1:3.0.0", _capped(), _SUMM_2),
    "squad_v2": FlanDataset("squad_v2", "squad/v2.0:3.0.0", _capped(), "N" * 10),
    # Reading comprehension with commonsense
    "cosmos_qa": FlanDataset("cosmos_qa", "cosmos_qa:1.0.0", _held(), "O" * 8 + "TT"),
    "record": FlanDataset("record", "super_glue/record:1.0.2", _capped(), "O" * 10),
    # Coreference
    "definite_pronoun_resolution": FlanDataset(
        "definite_pronoun_resolution",
        "definite_pronoun_resolution:1.1.0",
        _held(test="test"),
        "O" * 10,
    ),
    "winogrande": FlanDataset(
        "winogrande",
        "winogrande:1.1.0",
        {"train": "train_xl[:30000]", "validation": "train_xl[-200:]", "test": "validation"},
        "O" * 5 + "N" * 5,
    ),
    "wsc": FlanDataset("wsc", "super_glue/wsc:1.0.2", _held(50), "O" * 10),
    # WSC273 has a test split only: FLAN evaluates it and trains on it nowhere.
    "wsc273": FlanDataset("wsc273", "wsc273:1.0.0", {"test": "test"}, "O" * 10),
    # Misc. (FLAN's code: conversational QA, question classification, linguistic acceptability,
    # word disambiguation, math, text formatting)
    "coqa": FlanDataset("coqa", "coqa:1.0.0", _held(100, test="test"), "N" * 9 + "T"),
    "quac": FlanDataset("quac", "quac:1.0.0", _capped(), _SUMM_2),
    "trec": FlanDataset("trec", "trec:1.0.0", _held(test="test"), _NLI_T),
    "cola": FlanDataset("cola", "glue/cola", _held(), "O" * 8 + "TT"),
    "wic": FlanDataset("wic", "super_glue/wic:1.0.2", _held(), "O" * 10),
    "math_dataset": FlanDataset(
        "math_dataset", "math_dataset/algebra__linear_1d:1.0.0", _capped("test"), "N" * 10
    ),
    "fix_punct": FlanDataset("fix_punct", "para_crawl/enda:1.2.0", _enda(30_200), "N" * 10),
    "true_case": FlanDataset("true_case", "para_crawl/enda:1.2.0", _enda(0), "N" * 9 + "T"),
    "word_segment": FlanDataset("word_segment", "para_crawl/enda:1.2.0", _enda(60_400), _SUMM_2),
    # Summarization
    "aeslc": FlanDataset(
        "aeslc",
        "aeslc:1.0.0",
        {"train": "train", "validation": "validation[-200:]", "test": "test"},
        _SUMM_2,
    ),
    "ag_news_subset": FlanDataset(
        "ag_news_subset", "ag_news_subset:1.0.0", _capped("test"), "O" * 8 + "TT"
    ),
    "cnn_dailymail": FlanDataset(
        "cnn_dailymail", "cnn_dailymail:3.1.0", _LABELLED, "N" * 7 + "TTT"
    ),
    "gigaword": FlanDataset("gigaword", "gigaword:1.2.0", _LABELLED, _SUMM_2),
    "multi_news": FlanDataset("multi_news", "multi_news:1.0.0", _LABELLED, _SUMM_2),
    "newsroom": FlanDataset("newsroom", "newsroom:1.0.0", _LABELLED, "N" * 7 + "TTT"),
    "opinion_abstracts_idebate": FlanDataset(
        "opinion_abstracts_idebate",
        "opinion_abstracts/idebate:1.0.0",
        {"train": "train[:-600]", "validation": "train[-600:-500]", "test": "train[-500:]"},
        "N" * 6 + "TTTT",
    ),
    "opinion_abstracts_rotten_tomatoes": FlanDataset(
        "opinion_abstracts_rotten_tomatoes",
        "opinion_abstracts/rotten_tomatoes:1.0.0",
        {"train": "train[:-600]", "validation": "train[-600:-500]", "test": "train[-500:]"},
        "N" * 7 + "TTT",
    ),
    "samsum": FlanDataset(
        "samsum",
        "samsum:1.0.0",
        {"train": "train", "validation": "validation[:200]", "test": "test"},
        "N" * 7 + "TTT",
    ),
    "wiki_lingua_english_en": FlanDataset(
        "wiki_lingua_english_en", "gem/wiki_lingua_english_en:1.1.0", _LABELLED, _SUMM_2
    ),
    "xsum": FlanDataset("xsum", "huggingface:xsum", _LABELLED, _SUMM_2),
}

# Translation: the direction of each original template (FLAN's order; the rest are turned
# around: write a sentence in one language, name the language of a sentence).
DIRECTIONS = {
    "para_crawl": "XEXXEEXX",
    "wmt": "XEEEXXXX",
}


def splits(dataset: str) -> dict[str, str]:
    """FLAN's split strings of ``dataset`` (a copy: specs may not share a mutable dict)."""
    return dict(FLAN[dataset].splits)


# Why a spec differs from FLAN's code (``flan-jax datacard`` lists every difference it finds
# and fails on one without a reason here). Key: (dataset, what differs).
DIFFERENCE_REASONS: dict[tuple[str, str], str] = {
    ("cnn_dailymail", "builder"): (
        "TFDS no longer builds cnn_dailymail 3.1.0; 3.4.0 holds the same articles and highlights"
    ),
    ("multi_news", "builder"): (
        "TFDS no longer builds multi_news 1.0.0; 2.1.0 is the same corpus re-hosted"
    ),
    ("winogrande", "builder"): (
        "TFDS no longer builds winogrande 1.1.0; 1.2.0 is the current release of the same data"
    ),
    ("xsum", "builder"): (
        "FLAN read XSum through the Hugging Face datasets bridge, which this project does not "
        "depend on; TFDS' own xsum builder holds the same BBC articles and summaries"
    ),
    ("cola", "builder"): (
        "FLAN names glue/cola without a version; seqio needs one, and 2.0.0 is the version the "
        "unversioned name resolved to"
    ),
}
