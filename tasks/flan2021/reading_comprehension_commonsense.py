"""Reading comprehension with commonsense cluster: CosmosQA, ReCoRD."""

from __future__ import annotations

import tensorflow as tf

from flan_jax.registry import TaskSpec
from flan_jax.sources import TfdsSource

from . import common
from .common import arrange, turned
from .flan_reference import splits

COSMOS_TEMPLATES = arrange(
    "cosmos_qa",
    (
        "{context}\n\nQuestion: {question}",
        "{context}\n\nAnswer the following question about the text: {question}",
        "Read the story and choose the best answer.\n\n{context}\n\n{question}\n\n{options}",
        "Context: {context}\nQ: {question}\nWhich answer is most plausible?",
        "{context}\n\nUsing common sense, {question_lower}",
        "Here is a short personal narrative:\n{context}\n\n{question}",
        "{question}\n\nAnswer based on this passage:\n{context}",
        'Consider the following: {context}\nWhat is the best answer to "{question}"?',
    ),
    (
        turned("Write a question about this story.\n\n{context}", "{question}"),
        turned("{context}\n\nWhat might a reader ask after reading this?", "{question}"),
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


# ReCoRD as FLAN frames it: the query up to the blank is shown, and each option is an entity
# followed by the rest of the query, so choosing an option completes the passage.
RECORD_TEMPLATES = arrange(
    "record",
    (
        "Finish the last sentence of this news story.\n\n{passage}\n\n{query}",
        "{passage}\n\n{query}",
        "{passage}\n\nHow should this sentence continue?\n{query}",
        "Read the article and pick the right continuation.\n\n{passage}\n\n{query}",
        "Article:\n{passage}\n\nComplete: {query}",
        "{passage}\n\nWhich ending fits this sentence best?\n{query}",
        "Here is a news article:\n{passage}\n\nNow continue the summary sentence: {query}",
        "Based on the text below, complete the sentence.\n\n{passage}\n\n{query}",
        "{passage}\n\nChoose the most logical completion: {query}",
        "News: {passage}\n\nSentence start: {query}\nEnding:",
    ),
)


def _record_fields(ex):
    # The passage without its highlights; the query split at the placeholder.
    passage = tf.strings.split(ex["passage"], "\n@highlight")[0]
    parts = tf.concat([tf.strings.split(ex["query"], "@placeholder"), [""]], axis=0)
    rest = parts[1]
    options = tf.strings.join([ex["entities"], tf.fill(tf.shape(ex["entities"]), rest)])
    answers = tf.strings.join([ex["answers"], tf.fill(tf.shape(ex["answers"]), rest)])
    return {
        "passage": passage,
        "query": common.strip(parts[0]),
        "options": options,
        "answer": common.first(answers),
        # Every gold answer counts: rank classification marks an option correct if it is any.
        "references": answers,
    }


SPECS = (
    TaskSpec(
        name="cosmos_qa",
        cluster="reading_comprehension_commonsense",
        source=TfdsSource("cosmos_qa:1.0.0"),
        fields_fn=_cosmos_fields,
        fields=("context", "question", "question_lower", "options", "answer"),
        templates=COSMOS_TEMPLATES,
        splits=splits("cosmos_qa"),
        primary_metric="accuracy",
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
        splits=splits("record"),
        primary_metric="accuracy",
        filter_fn=lambda ex: tf.size(ex["answers"]) > 0,
        description="ReCoRD: fill the masked entity of a news summary sentence",
    ),
)
