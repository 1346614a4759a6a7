"""Sentiment cluster: IMDB, Sentiment140, SST-2, Yelp polarity."""

from __future__ import annotations

import tensorflow as tf

from flan_jax.registry import TaskSpec
from flan_jax.sources import TfdsSource

from . import common, flan_reference
from .common import arrange, turned
from .flan_reference import splits

POLARITY = ("negative", "positive")
FIELDS = ("text", "options", "answer")


def _originals(kind: str) -> list[str]:
    """Original-task inputs over a piece of ``kind`` text (a review, a tweet, a sentence)."""
    return [
        f"{{text}}\n\nIs this {kind} positive or negative?",
        f"What is the sentiment of the following {kind}?\n\n{{text}}",
        f"{kind.capitalize()}: {{text}}\n\nHow would you describe its tone?",
        f"Classify the sentiment of this {kind}.\n\n{{text}}\n\n{{options}}",
        "{text}\n\nDid the writer like it or not?",
        f"Read the {kind} and tell me whether its attitude is positive or negative.\n{{text}}",
        f"Here is a {kind}:\n{{text}}\n\nWhich word describes its sentiment best?",
        "Determine the polarity of the text below.\n\n{text}",
    ]


def _turned(kind: str) -> list:
    return [
        turned(f"Write a {{answer}} {kind}.", "{text}"),
        turned(f"Compose a short {kind} that expresses a {{answer}} opinion.", "{text}"),
        turned(f"Give an example of a {kind}.", "{text}"),
        turned(f"Produce a {kind} whose sentiment is {{answer}}.", "{text}"),
    ]


def _templates(dataset: str, kind: str):
    """Our templates for ``dataset`` in FLAN's structure (its counts of each kind)."""
    structure = flan_reference.FLAN[dataset].structure
    n_orig = structure.count("O") + structure.count("N")
    return arrange(dataset, _originals(kind)[:n_orig], _turned(kind)[: structure.count("T")])


def _fields(text_key: str, label_fn=None, clean=None):
    def fn(ex):
        label = tf.cast(ex["label"], tf.int32) if label_fn is None else label_fn(ex)
        opts, answer = common.pick(POLARITY, label)
        text = ex[text_key] if clean is None else clean(ex[text_key])
        return {"text": text, "options": opts, "answer": answer}

    return fn


def _sentiment140_label(ex):
    # FLAN: polarity 3 or 4 is positive, anything else (0, and the neutral 2) negative.
    positive = tf.logical_or(tf.equal(ex["polarity"], 3), tf.equal(ex["polarity"], 4))
    return tf.cast(positive, tf.int32)


def _imdb_text(text):
    return tf.strings.regex_replace(text, "<br />", "\n")


def _yelp_text(text):
    text = tf.strings.regex_replace(text, r'\\""', '"')
    return tf.strings.regex_replace(text, r"\\n", " ")


SPECS = (
    TaskSpec(
        name="imdb_reviews",
        cluster="sentiment",
        source=TfdsSource("imdb_reviews/plain_text:1.0.0"),
        fields_fn=_fields("text", clean=_imdb_text),
        fields=FIELDS,
        templates=_templates("imdb_reviews", "movie review"),
        splits=splits("imdb_reviews"),
        primary_metric="accuracy",
        description="IMDB movie reviews, positive or negative",
    ),
    TaskSpec(
        name="sentiment140",
        cluster="sentiment",
        source=TfdsSource("sentiment140:1.0.0"),
        fields_fn=_fields("text", label_fn=_sentiment140_label),
        fields=FIELDS,
        templates=_templates("sentiment140", "tweet"),
        splits=splits("sentiment140"),
        primary_metric="accuracy",
        description="Sentiment140 tweets, positive or negative",
    ),
    TaskSpec(
        name="sst2",
        cluster="sentiment",
        source=TfdsSource("glue/sst2:2.0.0"),
        fields_fn=_fields("sentence"),
        fields=FIELDS,
        templates=_templates("sst2", "movie review sentence"),
        splits=splits("sst2"),
        primary_metric="accuracy",
        description="Stanford Sentiment Treebank (GLUE SST-2) sentences",
    ),
    TaskSpec(
        name="yelp_polarity_reviews",
        cluster="sentiment",
        source=TfdsSource("yelp_polarity_reviews:0.2.0"),
        fields_fn=_fields("text", clean=_yelp_text),
        fields=FIELDS,
        templates=_templates("yelp_polarity_reviews", "Yelp review"),
        splits=splits("yelp_polarity_reviews"),
        primary_metric="accuracy",
        description="Yelp reviews, positive or negative",
    ),
)
