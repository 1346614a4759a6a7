"""Reading comprehension with commonsense cluster: CosmosQA, ReCoRD."""

from __future__ import annotations

import tensorflow as tf

from flan_jax.registry import TaskSpec
from flan_jax.sources import TfdsSource
from flan_jax.templates import Template

from . import common

COSMOS_TEMPLATES = (
    Template("{context}\n\nQuestion: {question}", options=True),
    Template("{context}\n\nAnswer the following question about the text: {question}", options=True),
    Template(
        "Read the story and choose the best answer.\n\n{context}\n\n{question}\n\n{options}",
        options=True,
    ),
    Template("Context: {context}\nQ: {question}\nWhich answer is most plausible?", options=True),
    Template("{context}\n\nUsing common sense, {question_lower}", options=True),
    Template("Here is a short personal narrative:\n{context}\n\n{question}", options=True),
    Template("{question}\n\nAnswer based on this passage:\n{context}", options=True),
    Template(
        'Consider the following: {context}\nWhat is the best answer to "{question}"?', options=True
    ),
    Template("{context}\n\n{question}"),
    Template(
        '{context}\n\nWrite a question about this story whose answer is "{answer}".',
        targets="{question}",
        turned_around=True,
    ),
)


def _lower_first(text: tf.Tensor) -> tf.Tensor:
    return tf.strings.join(
        [tf.strings.lower(tf.strings.substr(text, 0, 1)), tf.strings.substr(text, 1, -1)]
    )


def _cosmos_fields(ex):
    opts = tf.stack([ex["answer0"], ex["answer1"], ex["answer2"], ex["answer3"]])
    question = common.strip(ex["question"])
    return {
        "context": ex["context"],
        "question": question,
        "question_lower": _lower_first(question),
        "options": opts,
        "answer": tf.gather(opts, tf.cast(ex["label"], tf.int32)),
    }


RECORD_TEMPLATES = (
    Template("{passage}\n\nWhich entity fills the blank (@placeholder) in: {query}", options=True),
    Template(
        "Read the news article and complete the sentence.\n\n{passage}\n\n{query}", options=True
    ),
    Template(
        '{passage}\n\nWhat should replace @placeholder in the following?\n"{query}"', options=True
    ),
    Template(
        "Article:\n{passage}\n\nSentence with a gap: {query}\nWho or what is missing?", options=True
    ),
    Template("{passage}\n\nFill in @placeholder: {query}\n\n{options}", options=True),
    Template('Based on the text below, complete "{query}".\n\n{passage}', options=True),
    Template("{passage}\n\nQuery: {query}\nAnswer:", options=True),
    Template(
        'Here is an article:\n{passage}\n\nWhat does @placeholder refer to in "{query}"?',
        options=True,
    ),
    Template('{passage}\n\nWhat is @placeholder in "{query}"?'),
    Template(
        '{passage}\n\nWrite a sentence about the article in which "{answer}" is '
        "replaced by @placeholder.",
        targets="{query}",
        turned_around=True,
    ),
)


def _record_fields(ex):
    passage = tf.strings.regex_replace(ex["passage"], r"@highlight\n", "- ")
    return {
        "passage": passage,
        "query": ex["query"],
        "options": ex["entities"],
        "answer": common.first(ex["answers"]),
        "references": ex["answers"],
    }


SPECS = (
    TaskSpec(
        name="cosmos_qa",
        cluster="reading_comprehension_commonsense",
        source=TfdsSource("cosmos_qa:1.0.0"),
        fields_fn=_cosmos_fields,
        fields=("context", "question", "question_lower", "options", "answer"),
        templates=COSMOS_TEMPLATES,
        splits=common.hidden(large=False),
        description="CosmosQA: commonsense questions about everyday narratives",
    ),
    TaskSpec(
        name="record",
        cluster="reading_comprehension_commonsense",
        source=TfdsSource("super_glue/record:1.0.2"),
        fields_fn=_record_fields,
        fields=("passage", "query", "options", "answer", "references"),
        templates=RECORD_TEMPLATES,
        metrics=common.metric("squad"),
        postprocessor=common.references_postprocessor,
        splits=common.hidden(large=True),
        filter_fn=lambda ex: tf.size(ex["answers"]) > 0,
        description="ReCoRD: fill the masked entity of a news summary sentence",
    ),
)
