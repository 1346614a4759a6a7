"""Sentiment cluster: IMDB, Sentiment140, SST-2, Yelp polarity."""

from __future__ import annotations

import tensorflow as tf

from flan_jax.registry import TaskSpec
from flan_jax.sources import TfdsSource
from flan_jax.templates import Template

from . import common

POLARITY = ("negative", "positive")
FIELDS = ("text", "options", "answer")


def _templates(kind: str) -> tuple[Template, ...]:
    """Ten templates over a piece of ``kind`` text (a review, a tweet, a sentence)."""
    return (
        Template(f"{{text}}\n\nIs this {kind} positive or negative?", options=True),
        Template(f"What is the sentiment of the following {kind}?\n\n{{text}}", options=True),
        Template(
            f"{kind.capitalize()}: {{text}}\n\nHow would you describe its tone?", options=True
        ),
        Template(
            f"Classify the sentiment of this {kind}.\n\n{{text}}\n\n{{options}}", options=True
        ),
        Template("{text}\n\nDid the writer like it or not?", options=True),
        Template(
            f"Read the {kind} and tell me whether its attitude is positive or negative.\n{{text}}",
            options=True,
        ),
        Template(
            f"Here is a {kind}:\n{{text}}\n\nWhich word describes its sentiment best?", options=True
        ),
        Template("Determine the polarity of the text below.\n\n{text}", options=True),
        Template(f"Write a {{answer}} {kind}.", targets="{text}", turned_around=True),
        Template(
            f"Compose a short {kind} that expresses a {{answer}} opinion.",
            targets="{text}",
            turned_around=True,
        ),
    )


def _fields(text_key: str, label_key: str = "label", order=None):
    def fn(ex):
        label = tf.cast(ex[label_key], tf.int32)
        if order is not None:
            label = tf.gather(tf.constant(order), label)
        opts, answer = common.pick(POLARITY, label)
        text = tf.strings.regex_replace(common.strip(ex[text_key]), r"<br\s*/?>", "\n")
        return {"text": text, "options": opts, "answer": answer}

    return fn


SPECS = (
    TaskSpec(
        name="imdb_reviews",
        cluster="sentiment",
        source=TfdsSource("imdb_reviews/plain_text:1.0.0"),
        fields_fn=_fields("text"),
        fields=FIELDS,
        templates=_templates("movie review"),
        splits=common.hidden(large=False, test="test"),
        description="IMDB movie reviews, positive or negative",
    ),
    TaskSpec(
        name="sentiment140",
        cluster="sentiment",
        source=TfdsSource("sentiment140:1.0.0"),
        # Polarity 0 = negative, 4 = positive; the few neutral (2) test tweets are dropped.
        fields_fn=_fields("text", "polarity", order=(0, 0, 0, 0, 1)),
        fields=FIELDS,
        templates=_templates("tweet"),
        splits=common.hidden(large=True, test="test"),
        filter_fn=lambda ex: tf.logical_or(ex["polarity"] == 0, ex["polarity"] == 4),
        description="Sentiment140 tweets, positive or negative",
    ),
    TaskSpec(
        name="sst2",
        cluster="sentiment",
        source=TfdsSource("glue/sst2:2.0.0"),
        fields_fn=_fields("sentence"),
        fields=FIELDS,
        templates=_templates("movie review sentence"),
        splits=common.hidden(large=True),
        description="Stanford Sentiment Treebank (GLUE SST-2) sentences",
    ),
    TaskSpec(
        name="yelp_polarity_reviews",
        cluster="sentiment",
        source=TfdsSource("yelp_polarity_reviews:0.2.0"),
        fields_fn=_fields("text"),
        fields=FIELDS,
        templates=_templates("Yelp review"),
        splits=common.hidden(large=True, test="test"),
        description="Yelp reviews, positive or negative",
    ),
)
