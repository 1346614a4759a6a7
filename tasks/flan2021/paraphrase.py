"""Paraphrase cluster: MRPC, QQP, PAWS (Wiki), STS-B."""

from __future__ import annotations

import tensorflow as tf

from flan_jax.registry import TaskSpec
from flan_jax.sources import TfdsSource
from flan_jax.templates import Template

from . import common

NO_YES = ("no", "yes")
FIELDS = ("sentence1", "sentence2", "options", "answer", "relation")

SENTENCE_TEMPLATES = (
    Template("Do these two sentences mean the same thing?\n{sentence1}\n{sentence2}", options=True),
    Template(
        "Sentence 1: {sentence1}\nSentence 2: {sentence2}\n\nAre they paraphrases of each other?",
        options=True,
    ),
    Template(
        '"{sentence1}"\n"{sentence2}"\n\nDo both sentences express the same meaning?', options=True
    ),
    Template(
        "Is the second sentence a rewording of the first?\n\nFirst: {sentence1}\n"
        "Second: {sentence2}",
        options=True,
    ),
    Template(
        "{sentence1}\n\nDoes the sentence above say the same as the one below?\n\n"
        "{sentence2}\n\n{options}",
        options=True,
    ),
    Template(
        "Decide whether the following pair of sentences are semantically equivalent.\n\n"
        "A: {sentence1}\nB: {sentence2}",
        options=True,
    ),
    Template('Can "{sentence1}" be restated as "{sentence2}"?', options=True),
    Template(
        "Compare the two sentences below. Is their meaning identical?\n1. {sentence1}\n"
        "2. {sentence2}",
        options=True,
    ),
    Template(
        "Write a sentence that means {relation} as the following one.\n\n{sentence1}",
        targets="{sentence2}",
        turned_around=True,
    ),
    Template(
        "Here is a sentence: {sentence2}\nGive another sentence that means {relation}.",
        targets="{sentence1}",
        turned_around=True,
    ),
)

QUESTION_TEMPLATES = (
    Template(
        "Are these two questions asking the same thing?\n{sentence1}\n{sentence2}", options=True
    ),
    Template(
        "Question 1: {sentence1}\nQuestion 2: {sentence2}\n\nWould the answer to one also "
        "answer the other?",
        options=True,
    ),
    Template('"{sentence1}" and "{sentence2}": are these duplicate questions?', options=True),
    Template(
        "Do the questions below have the same meaning?\n\nA: {sentence1}\nB: {sentence2}\n\n"
        "{options}",
        options=True,
    ),
    Template(
        "{sentence1}\n\n{sentence2}\n\nAre the two questions above paraphrases?", options=True
    ),
    Template(
        'Someone asked "{sentence1}" and someone else asked "{sentence2}". Did they ask '
        "the same question?",
        options=True,
    ),
    Template(
        "Check if these questions are duplicates.\n- {sentence1}\n- {sentence2}", options=True
    ),
    Template(
        "First question: {sentence1}\nSecond question: {sentence2}\nSame intent?", options=True
    ),
    Template(
        "Write a question that asks {relation} as this one: {sentence1}",
        targets="{sentence2}",
        turned_around=True,
    ),
)

STSB_TEMPLATES = (
    Template(
        "How similar in meaning are these sentences, from 0 (unrelated) to 5 (same)?\n\n"
        "{sentence1}\n{sentence2}",
        options=True,
    ),
    Template(
        "Sentence A: {sentence1}\nSentence B: {sentence2}\n\nRate their semantic "
        "similarity on a scale of 0 to 5.",
        options=True,
    ),
    Template(
        'On a 0-5 scale, how close is "{sentence1}" to "{sentence2}" in meaning?', options=True
    ),
    Template(
        "{sentence1}\n{sentence2}\n\nScore the similarity of the two sentences above "
        "(0 = different, 5 = equivalent).",
        options=True,
    ),
    Template(
        "Give a similarity score between 0 and 5 for this pair.\n1) {sentence1}\n"
        "2) {sentence2}\n\n{options}",
        options=True,
    ),
    Template(
        "Do these sentences mean the same? Answer with a number from 0 (no) to 5 (fully)."
        "\n\n{sentence1}\n{sentence2}",
        options=True,
    ),
    Template('Rate from 0 to 5 how much meaning these share: "{sentence1}" / "{sentence2}"'),
    Template(
        "Write a sentence whose similarity to the one below is {answer} out of 5.\n\n{sentence1}",
        targets="{sentence2}",
        turned_around=True,
    ),
)


def _pair_fields(a: str, b: str, relations=("something different", "the same thing")):
    def fn(ex):
        opts, answer = common.pick(NO_YES, ex["label"])
        _, relation = common.pick(relations, ex["label"])
        return {
            "sentence1": ex[a],
            "sentence2": ex[b],
            "options": opts,
            "answer": answer,
            "relation": relation,
        }

    return fn


def _stsb_fields(ex):
    score = tf.clip_by_value(tf.round(ex["label"]), 0.0, 5.0)
    return {
        "sentence1": ex["sentence1"],
        "sentence2": ex["sentence2"],
        "options": tf.constant(["0", "1", "2", "3", "4", "5"]),
        "answer": tf.strings.as_string(tf.cast(score, tf.int32)),
    }


SPECS = (
    TaskSpec(
        name="mrpc",
        cluster="paraphrase",
        source=TfdsSource("glue/mrpc:2.0.0"),
        fields_fn=_pair_fields("sentence1", "sentence2"),
        fields=FIELDS,
        templates=SENTENCE_TEMPLATES,
        rank_metrics=common.RANK_F1,
        splits=common.hidden(large=False),
        description="Microsoft Research Paraphrase Corpus (news sentence pairs)",
    ),
    TaskSpec(
        name="qqp",
        cluster="paraphrase",
        source=TfdsSource("glue/qqp:2.0.0"),
        fields_fn=_pair_fields("question1", "question2", ("something different", "the same thing")),
        fields=FIELDS,
        templates=QUESTION_TEMPLATES,
        rank_metrics=common.RANK_F1,
        splits=common.hidden(large=True),
        description="Quora Question Pairs: duplicate questions",
    ),
    TaskSpec(
        name="paws_wiki",
        cluster="paraphrase",
        source=TfdsSource("paws_wiki/labeled_final_raw:1.1.0"),
        fields_fn=_pair_fields("sentence1", "sentence2"),
        fields=FIELDS,
        templates=SENTENCE_TEMPLATES,
        splits=common.labelled(),
        description="PAWS adversarial paraphrases from Wikipedia (word-scrambled pairs)",
    ),
    TaskSpec(
        name="stsb",
        cluster="paraphrase",
        source=TfdsSource("glue/stsb:2.0.0"),
        fields_fn=_stsb_fields,
        fields=("sentence1", "sentence2", "options", "answer"),
        templates=STSB_TEMPLATES,
        metrics=common.metric("pearson_corrcoef", "spearman_corrcoef"),
        postprocessor=common.float_postprocessor,
        splits=common.hidden(large=False),
        description="Semantic Textual Similarity Benchmark, similarity rounded to 0-5",
    ),
)
