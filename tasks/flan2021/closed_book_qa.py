"""Closed-book QA cluster: ARC (easy, challenge), Natural Questions (open), TriviaQA."""

from __future__ import annotations

import tensorflow as tf

from flan_jax.registry import TaskSpec
from flan_jax.sources import TfdsSource
from flan_jax.templates import Template

from . import common

ARC_TEMPLATES = (
    Template("{question}", options=True),
    Template("Question: {question}\n\nWhat is the correct answer?", options=True),
    Template("Answer the following science question.\n\n{question}", options=True),
    Template(
        "{question}\n\nPick the right answer from the choices below.\n\n{options}", options=True
    ),
    Template(
        "Here is a grade-school science question: {question}\nWhich choice is correct?",
        options=True,
    ),
    Template("Q: {question}\nA:", options=True),
    Template("Choose the best answer to this question.\n{question}", options=True),
    Template("Test question: {question}", options=True),
    Template("Answer this science question in a few words: {question}"),
    Template(
        'Write a science exam question whose correct answer is "{answer}".',
        targets="{question}",
        turned_around=True,
    ),
)

OPEN_TEMPLATES = (
    Template("{question}?"),
    Template("Answer this question: {question}?"),
    Template("Q: {question}?\nA:"),
    Template("Please answer the following question.\n\n{question}?"),
    Template("What is the answer to this question? {question}?"),
    Template("Question: {question}?\nAnswer:"),
    Template("Give a short answer.\n\n{question}?"),
    Template("I have a trivia question for you: {question}?"),
    Template(
        'Write a question whose answer is "{answer}".', targets="{question}?", turned_around=True
    ),
    Template(
        "Answer: {answer}\n\nWhat could the question have been?",
        targets="{question}?",
        turned_around=True,
    ),
)


def _arc_fields(ex):
    texts = ex["choices"]["text"]
    correct = tf.equal(ex["choices"]["label"], ex["answerKey"])
    return {
        "question": common.strip(ex["question"]),
        "options": texts,
        "answer": common.first(tf.boolean_mask(texts, correct)),
    }


def _strip_question_mark(q: tf.Tensor) -> tf.Tensor:
    return tf.strings.regex_replace(common.strip(q), r"\?+$", "")


def _nq_fields(ex):
    return {
        "question": _strip_question_mark(ex["question"]),
        "answer": common.first(ex["answer"]),
        "references": ex["answer"],
    }


def _trivia_fields(ex):
    value = ex["answer"]["value"]
    return {
        "question": _strip_question_mark(ex["question"]),
        "answer": value,
        "references": tf.concat([tf.reshape(value, [1]), ex["answer"]["aliases"]], axis=0),
    }


QA_METRICS = common.metric("trivia_qa", "squad")


def _arc(config: str, name: str) -> TaskSpec:
    return TaskSpec(
        name=name,
        cluster="closed_book_qa",
        source=TfdsSource(f"ai2_arc/{config}:1.0.0"),
        fields_fn=_arc_fields,
        fields=("question", "options", "answer"),
        templates=ARC_TEMPLATES,
        splits=common.labelled(),
        description=f"AI2 Reasoning Challenge ({config}), multiple-choice science questions",
    )


SPECS = (
    _arc("ARC-Easy", "arc_easy"),
    _arc("ARC-Challenge", "arc_challenge"),
    TaskSpec(
        name="natural_questions",
        cluster="closed_book_qa",
        source=TfdsSource("natural_questions_open:1.0.0"),
        fields_fn=_nq_fields,
        fields=("question", "answer", "references"),
        templates=OPEN_TEMPLATES,
        metrics=QA_METRICS,
        postprocessor=common.references_postprocessor,
        splits=common.hidden(large=True),
        description="Natural Questions (open): Google queries with short answers, no context",
    ),
    TaskSpec(
        name="trivia_qa",
        cluster="closed_book_qa",
        source=TfdsSource("trivia_qa/rc:1.1.0"),
        fields_fn=_trivia_fields,
        fields=("question", "answer", "references"),
        templates=OPEN_TEMPLATES,
        metrics=QA_METRICS,
        postprocessor=common.references_postprocessor,
        splits=common.hidden(large=True),
        description="TriviaQA trivia questions answered without the evidence documents",
    ),
)
