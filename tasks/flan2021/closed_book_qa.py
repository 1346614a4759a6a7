"""Closed-book QA cluster: ARC (easy, challenge), Natural Questions (open), TriviaQA."""

from __future__ import annotations

import tensorflow as tf

from flan_jax.registry import TaskSpec
from flan_jax.sources import TfdsSource

from . import common
from .common import arrange, turned
from .flan_reference import splits

ARC_TEMPLATES = arrange(
    "arc_easy",
    (
        "{question}",
        "Question: {question}\n\nWhat is the correct answer?",
        "Answer the following science question.\n\n{question}",
        "{question}\n\nPick the right answer from the choices below.\n\n{options}",
        "Here is a grade-school science question: {question}\nWhich choice is correct?",
        "Q: {question}\nA:",
        "Choose the best answer to this question.\n{question}",
    ),
    (
        turned("Write a science question a grade-school test might ask.", "{question}"),
        turned("Give an example of an exam question about science.", "{question}"),
        turned("What might a science teacher ask in a quiz?", "{question}"),
    ),
)

OPEN_TEMPLATES = arrange(
    "natural_questions",
    (
        "{question}?",
        "Answer this question: {question}?",
        "Q: {question}?\nA:",
        "Please answer the following question.\n\n{question}?",
        "What is the answer to this question? {question}?",
        "Question: {question}?\nAnswer:",
        "Give a short answer.\n\n{question}?",
        "I have a trivia question for you: {question}?",
        "Answer in a few words: {question}?",
        "{question}?\n\nWhat is the answer?",
    ),
)


def _arc_fields(ex):
    texts = ex["choices"]["text"]
    return {
        "question": ex["question"],
        "options": texts,
        # answerKey is the index of the correct choice (a ClassLabel over A-E).
        "answer": tf.gather(texts, tf.cast(ex["answerKey"], tf.int32)),
    }


def _arc_four_choices(ex):
    # FLAN keeps the questions with exactly four choices.
    return tf.equal(tf.size(ex["choices"]["text"]), 4)


def _strip_question_mark(q: tf.Tensor) -> tf.Tensor:
    return tf.strings.regex_replace(common.strip(q), r"\?+$", "")


def _nq_fields(ex):
    return {
        "question": _strip_question_mark(ex["question"]),
        "answer": common.first(ex["answer"]),
        "references": ex["answer"],
    }


def _trivia_fields(ex):
    return {
        "question": _strip_question_mark(ex["question"]),
        "answer": ex["answer"]["normalized_value"],
        "references": ex["answer"]["normalized_aliases"],
    }


QA_METRICS = common.metric("trivia_qa")


def _arc(config: str, name: str) -> TaskSpec:
    return TaskSpec(
        name=name,
        cluster="closed_book_qa",
        source=TfdsSource(f"ai2_arc/{config}:1.0.0"),
        fields_fn=_arc_fields,
        fields=("question", "options", "answer"),
        templates=ARC_TEMPLATES,
        splits=splits(name),
        filter_fn=_arc_four_choices,
        primary_metric="accuracy",
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
        splits=splits("natural_questions"),
        primary_metric="em",
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
        splits=splits("trivia_qa"),
        primary_metric="em",
        description="TriviaQA trivia questions answered without the evidence documents",
    ),
)
