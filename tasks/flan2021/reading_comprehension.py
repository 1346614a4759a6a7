"""Reading comprehension cluster: BoolQ, DROP, MultiRC, OpenbookQA, SQuAD v1.1 and v2.0."""

from __future__ import annotations

import tensorflow as tf

from flan_jax.registry import TaskSpec
from flan_jax.sources import TfdsSource
from flan_jax.templates import Template

from . import common

NO_YES = ("no", "yes")
UNANSWERABLE = "unanswerable"

BOOLQ_TEMPLATES = (
    Template("{passage}\n\nBased on the passage, {question}?", options=True),
    Template(
        "Read the text and answer the yes/no question.\n\n{title}: {passage}\n\n"
        "Question: {question}?",
        options=True,
    ),
    Template("{title}\n\n{passage}\n\nIs it true that {question}?", options=True),
    Template("Passage: {passage}\n\nAfter reading this, {question}?\n\n{options}", options=True),
    Template(
        "Answer the question using the article.\n\nArticle: {passage}\nQuestion: {question}?",
        options=True,
    ),
    Template("{passage}\n\nQ: {question}?", options=True),
    Template(
        "Here is some text about {title}: {passage}\n\nCan we say that the answer to "
        '"{question}" is yes?',
        options=True,
    ),
    Template("According to the following, {question}?\n\n{passage}", options=True),
    Template(
        "{passage}\n\nWrite a yes/no question about this passage whose answer is {answer}.",
        targets="{question}?",
        turned_around=True,
    ),
)


def _boolq_fields(ex):
    opts, answer = common.pick(NO_YES, tf.cast(ex["answer"], tf.int32))
    return {
        "passage": ex["passage"],
        "question": tf.strings.regex_replace(common.strip(ex["question"]), r"\?+$", ""),
        "title": ex["title"],
        "options": opts,
        "answer": answer,
    }


EXTRACTIVE_TEMPLATES = (
    Template("{context}\n\nAnswer this question based on the passage: {question}"),
    Template("Read this and answer the question.\n\n{context}\n\n{question}"),
    Template("Passage: {context}\nQuestion: {question}\nAnswer:"),
    Template("{title}\n{context}\n\nQ: {question}"),
    Template("Answer the question using the text.\n\nText: {context}\n\nQuestion: {question}"),
    Template("{context}\n\nFrom the passage above, {question_lower}"),
    Template("Here is an article about {title}:\n\n{context}\n\nPlease answer: {question}"),
    Template("Given the context, answer: {question}\n\nContext: {context}"),
    Template(
        '{context}\n\nWrite a question about the passage whose answer is "{answer}".',
        targets="{question}",
        turned_around=True,
    ),
    Template(
        'Ask a question about {title} that "{answer}" answers, using this text:\n\n{context}',
        targets="{question}",
        turned_around=True,
    ),
)


def _lower_first(text: tf.Tensor) -> tf.Tensor:
    return tf.strings.join(
        [tf.strings.lower(tf.strings.substr(text, 0, 1)), tf.strings.substr(text, 1, -1)]
    )


def _squad_fields(v2: bool):
    def fn(ex):
        refs = ex["answers"]["text"]
        if v2:
            refs = tf.cond(
                ex["is_impossible"] | (tf.size(refs) == 0),
                lambda: tf.constant([UNANSWERABLE]),
                lambda: refs,
            )
        question = common.strip(ex["question"])
        return {
            "context": ex["context"],
            "question": question,
            "question_lower": _lower_first(question),
            "title": tf.strings.regex_replace(ex["title"], "_", " "),
            "answer": common.first(refs),
            "references": refs,
        }

    return fn


DROP_TEMPLATES = tuple(
    Template(
        t.inputs.replace("{title}\n", "").replace(" about {title}", ""),
        t.targets,
        turned_around=t.turned_around,
    )
    for t in EXTRACTIVE_TEMPLATES
)


def _drop_fields(ex):
    question = common.strip(ex["question"])
    refs = tf.concat([tf.reshape(ex["answer"], [1]), ex["validated_answers"]], axis=0)
    return {
        "context": ex["passage"],
        "question": question,
        "question_lower": _lower_first(question),
        "answer": ex["answer"],
        "references": refs,
    }


MULTIRC_TEMPLATES = (
    Template(
        '{paragraph}\n\nQuestion: "{question}"\n\nResponse: "{response}"\n\nDoes the '
        "response correctly answer the question?",
        options=True,
    ),
    Template(
        "Read the passage, then decide if the answer is correct.\n\n{paragraph}\n\n"
        "Q: {question}\nA: {response}",
        options=True,
    ),
    Template(
        '{paragraph}\n\nBased on the paragraph, is "{response}" a correct answer to "{question}"?',
        options=True,
    ),
    Template(
        "Paragraph: {paragraph}\nQuestion: {question}\nCandidate answer: {response}\n\n"
        "Is the candidate right?\n\n{options}",
        options=True,
    ),
    Template(
        '{paragraph}\n\nSomeone was asked "{question}" and replied "{response}". Were '
        "they correct?",
        options=True,
    ),
    Template(
        'Consider this text:\n{paragraph}\n\nIf asked "{question}", would "{response}" '
        "be a valid answer?",
        options=True,
    ),
    Template(
        '{paragraph}\n\n{question}\nIs "{response}" true according to the passage?', options=True
    ),
    Template(
        "Check the answer against the passage.\n\nPassage: {paragraph}\nQuestion: "
        "{question}\nAnswer: {response}",
        options=True,
    ),
    Template(
        '{paragraph}\n\nWrite a question about the paragraph to which "{response}" is a '
        "{verdict} answer.",
        targets="{question}",
        turned_around=True,
    ),
)


def _multirc_fields(ex):
    opts, answer = common.pick(NO_YES, ex["label"])
    _, verdict = common.pick(("wrong", "correct"), ex["label"])
    return {
        "paragraph": ex["paragraph"],
        "question": ex["question"],
        "response": ex["answer"],
        "options": opts,
        "answer": answer,
        "verdict": verdict,
    }


OBQA_TEMPLATES = (
    Template("{question}", options=True),
    Template("Use elementary science knowledge to answer.\n\n{question}", options=True),
    Template("Fact: {fact}\n\nQuestion: {question}", options=True),
    Template("Given that {fact_lower}, {question_lower}", options=True),
    Template("Complete the statement: {question}", options=True),
    Template("Q: {question}\n\n{options}\n\nA:", options=True),
    Template('Knowing that "{fact}", how would one answer "{question}"?', options=True),
    Template("Pick the correct answer.\n{question}", options=True),
    Template(
        '{fact}\n\nWrite a question that tests this fact and has the answer "{answer}".',
        targets="{question}",
        turned_around=True,
    ),
)


def _obqa_fields(ex):
    q = ex["question"]
    opts = tf.stack([q["choice_A"], q["choice_B"], q["choice_C"], q["choice_D"]])
    question = common.strip(q["stem"])
    fact = tf.strings.regex_replace(common.strip(ex["fact1"]), r"\.$", "")
    return {
        "question": question,
        "question_lower": _lower_first(question),
        "fact": fact,
        "fact_lower": _lower_first(fact),
        "options": opts,
        "answer": tf.gather(opts, tf.cast(ex["answerKey"], tf.int32)),
    }


SQUAD_FIELDS = ("context", "question", "question_lower", "title", "answer", "references")
SQUAD_METRICS = common.metric("squad")


def _squad(v2: bool) -> TaskSpec:
    version = "v2.0" if v2 else "v1.1"
    return TaskSpec(
        name="squad_v2" if v2 else "squad_v1",
        cluster="reading_comprehension",
        source=TfdsSource(f"squad/{version}:3.0.0"),
        fields_fn=_squad_fields(v2),
        fields=SQUAD_FIELDS,
        templates=EXTRACTIVE_TEMPLATES,
        metrics=SQUAD_METRICS,
        postprocessor=common.references_postprocessor,
        splits=common.hidden(large=True),
        description=f"SQuAD {version}: extractive QA over Wikipedia"
        + (" (unanswerable questions answered 'unanswerable')" if v2 else ""),
    )


SPECS = (
    TaskSpec(
        name="bool_q",
        cluster="reading_comprehension",
        source=TfdsSource("bool_q:1.0.0"),
        fields_fn=_boolq_fields,
        fields=("passage", "question", "title", "options", "answer"),
        templates=BOOLQ_TEMPLATES,
        splits=common.hidden(large=False),
        description="BoolQ: yes/no questions about a Wikipedia passage",
    ),
    TaskSpec(
        name="drop",
        cluster="reading_comprehension",
        source=TfdsSource("drop:2.0.0"),
        fields_fn=_drop_fields,
        fields=("context", "question", "question_lower", "answer", "references"),
        templates=DROP_TEMPLATES,
        metrics=SQUAD_METRICS,
        postprocessor=common.references_postprocessor,
        splits=common.hidden(large=True, test="dev"),
        description="DROP: discrete reasoning (counting, arithmetic) over paragraphs",
    ),
    TaskSpec(
        name="multirc",
        cluster="reading_comprehension",
        source=TfdsSource("super_glue/multirc:1.0.2"),
        fields_fn=_multirc_fields,
        fields=("paragraph", "question", "response", "options", "answer", "verdict"),
        templates=MULTIRC_TEMPLATES,
        rank_metrics=common.RANK_F1,
        splits=common.hidden(large=False),
        description="MultiRC: is a candidate answer to a multi-sentence question correct",
    ),
    TaskSpec(
        name="openbookqa",
        cluster="reading_comprehension",
        source=TfdsSource("openbookqa:0.1.0"),
        fields_fn=_obqa_fields,
        fields=("question", "question_lower", "fact", "fact_lower", "options", "answer"),
        templates=OBQA_TEMPLATES,
        splits=common.labelled(),
        description="OpenBookQA: elementary science questions with a supporting fact",
    ),
    _squad(v2=False),
    _squad(v2=True),
)
