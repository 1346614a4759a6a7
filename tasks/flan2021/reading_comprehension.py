"""Reading comprehension cluster: BoolQ, DROP, MultiRC, OpenbookQA, SQuAD v1.1 and v2.0."""

from __future__ import annotations

import tensorflow as tf

from flan_jax.registry import TaskSpec
from flan_jax.sources import TfdsSource

from . import common
from .common import arrange, turned
from .flan_reference import splits

NO_YES = ("no", "yes")
UNANSWERABLE = "unanswerable"

BOOLQ_TEMPLATES = arrange(
    "bool_q",
    (
        "{passage}\n\nBased on the passage, {question}?",
        "Read the text and answer the yes/no question.\n\n{title}: {passage}\n\n"
        "Question: {question}?",
        "{title}\n\n{passage}\n\nIs it true that {question}?",
        "Passage: {passage}\n\nAfter reading this, {question}?\n\n{options}",
        "Answer the question using the article.\n\nArticle: {passage}\nQuestion: {question}?",
        "{passage}\n\nQ: {question}?",
        "Here is some text about {title}: {passage}\n\nCan we say that the answer to "
        '"{question}" is yes?',
        "According to the following, {question}?\n\n{passage}",
        "{title}. {passage}\n\nYes or no: {question}?",
        "Use the passage to decide.\n{passage}\n\n{question}?",
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


EXTRACTIVE_ORIGINALS = (
    "{context}\n\nAnswer this question based on the passage: {question}",
    "Read this and answer the question.\n\n{context}\n\n{question}",
    "Passage: {context}\nQuestion: {question}\nAnswer:",
    "{title}\n{context}\n\nQ: {question}",
    "Answer the question using the text.\n\nText: {context}\n\nQuestion: {question}",
    "{context}\n\nFrom the passage above, {question_lower}",
    "Here is an article about {title}:\n\n{context}\n\nPlease answer: {question}",
    "Given the context, answer: {question}\n\nContext: {context}",
)
SQUAD_V1_TEMPLATES = arrange(
    "squad_v1",
    EXTRACTIVE_ORIGINALS,
    (
        turned("Write a question about {title}.", "{question}"),
        turned("{context}\n\nWhat is this article's title?", "{title}"),
    ),
)

# SQuAD 2.0: every template says what to answer when the text holds no answer (FLAN's do too).
_IF_NONE = f'If the passage does not answer it, reply "{UNANSWERABLE}".'
SQUAD_V2_TEMPLATES = arrange(
    "squad_v2",
    (
        f"{{context}}\n\nAnswer this question based on the passage. {_IF_NONE}\n{{question}}",
        f"Read this and answer the question. {_IF_NONE}\n\n{{context}}\n\n{{question}}",
        f'Passage: {{context}}\nQuestion: {{question}}\nAnswer (or "{UNANSWERABLE}"):',
        f"{{title}}\n{{context}}\n\nQ: {{question}}\n({_IF_NONE})",
        f"Answer the question using the text. {_IF_NONE}\n\nText: {{context}}\n\n"
        "Question: {question}",
        f"{{context}}\n\nFrom the passage above, {{question_lower}} ({_IF_NONE})",
        f"Here is an article about {{title}}:\n\n{{context}}\n\nPlease answer if you can; "
        f'otherwise say "{UNANSWERABLE}": {{question}}',
        f"Given the context, answer: {{question}}\n{_IF_NONE}\n\nContext: {{context}}",
        f'{{context}}\n\nIs this question answerable from the text? If so answer it, if not write "{UNANSWERABLE}".\n{{question}}',
        f'Some questions about a text have no answer in it; for those, say "{UNANSWERABLE}".'
        "\n\n{context}\n\n{question}",
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


DROP_TEMPLATES = arrange(
    "drop",
    tuple(
        t.replace("{title}\n", "").replace(" about {title}", "") for t in EXTRACTIVE_ORIGINALS[:7]
    ),
    (
        turned("Write a passage that answers this question: {question}", "{context}"),
        turned("Write a question about the following passage: {context}", "{question}"),
        turned("{context}\n\nAsk a question that needs some counting or arithmetic.", "{question}"),
    ),
)


def _drop_fields(ex):
    question = common.strip(ex["question"])
    refs = tf.reshape(ex["answer"], [1])  # FLAN scores DROP against its one answer
    return {
        "context": ex["passage"],
        "question": question,
        "question_lower": _lower_first(question),
        "answer": ex["answer"],
        "references": refs,
    }


MULTIRC_TEMPLATES = arrange(
    "multirc",
    (
        '{paragraph}\n\nQuestion: "{question}"\n\nResponse: "{response}"\n\nDoes the '
        "response correctly answer the question?",
        "Read the passage, then decide if the answer is correct.\n\n{paragraph}\n\n"
        "Q: {question}\nA: {response}",
        '{paragraph}\n\nBased on the paragraph, is "{response}" a correct answer to "{question}"?',
        "Paragraph: {paragraph}\nQuestion: {question}\nCandidate answer: {response}\n\n"
        "Is the candidate right?\n\n{options}",
        '{paragraph}\n\nSomeone was asked "{question}" and replied "{response}". Were '
        "they correct?",
        'Consider this text:\n{paragraph}\n\nIf asked "{question}", would "{response}" '
        "be a valid answer?",
        '{paragraph}\n\n{question}\nIs "{response}" true according to the passage?',
        "Check the answer against the passage.\n\nPassage: {paragraph}\nQuestion: "
        "{question}\nAnswer: {response}",
    ),
    (
        turned("{paragraph}\n\nWhat could a reader ask about this paragraph?", "{question}"),
        turned("Write a question about the following paragraph.\n\n{paragraph}", "{question}"),
    ),
)


def _multirc_fields(ex):
    opts, answer = common.pick(NO_YES, ex["label"])
    return {
        "paragraph": ex["paragraph"],
        "question": ex["question"],
        "response": ex["answer"],
        "options": opts,
        "answer": answer,
        # The question id (unique over a split) groups its answers for MultiRC's exact match.
        "group": ex["idx"]["question"],
    }


OBQA_TEMPLATES = arrange(
    "openbookqa",
    (
        "{question}",
        "Use elementary science knowledge to answer.\n\n{question}",
        "Fact: {fact}\n\nQuestion: {question}",
        "Given that {fact_lower}, {question_lower}",
        "Complete the statement: {question}",
        "Q: {question}\n\n{options}\n\nA:",
        'Knowing that "{fact}", how would one answer "{question}"?',
    ),
    (
        turned('Which fact would help answer this question: "{question}"', "{fact}"),
        turned("State a scientific fact.", "{fact}"),
        turned("Write a sentence that teaches a fact about nature.", "{fact}"),
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
        templates=SQUAD_V2_TEMPLATES if v2 else SQUAD_V1_TEMPLATES,
        metrics=SQUAD_METRICS,
        postprocessor=common.references_postprocessor,
        splits=splits("squad_v2" if v2 else "squad_v1"),
        primary_metric="f1",
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
        splits=splits("bool_q"),
        primary_metric="accuracy",
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
        splits=splits("drop"),
        primary_metric="f1",
        description="DROP: discrete reasoning (counting, arithmetic) over paragraphs",
    ),
    TaskSpec(
        name="multirc",
        cluster="reading_comprehension",
        source=TfdsSource("super_glue/multirc:1.0.2"),
        fields_fn=_multirc_fields,
        fields=("paragraph", "question", "response", "options", "answer"),
        templates=MULTIRC_TEMPLATES,
        rank_metrics=common.RANK_MULTIRC,
        splits=splits("multirc"),
        primary_metric="accuracy",
        description="MultiRC: is a candidate answer to a multi-sentence question correct",
    ),
    TaskSpec(
        name="openbookqa",
        cluster="reading_comprehension",
        source=TfdsSource("openbookqa:0.1.0"),
        fields_fn=_obqa_fields,
        fields=("question", "question_lower", "fact", "fact_lower", "options", "answer"),
        templates=OBQA_TEMPLATES,
        splits=splits("openbookqa"),
        primary_metric="accuracy",
        description="OpenBookQA: elementary science questions with a supporting fact",
    ),
    _squad(v2=False),
    _squad(v2=True),
)
