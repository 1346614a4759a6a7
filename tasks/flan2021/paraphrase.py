"""Paraphrase cluster: MRPC, QQP, PAWS (Wiki), STS-B."""

from __future__ import annotations

import tensorflow as tf

from flan_jax.registry import TaskSpec
from flan_jax.sources import TfdsSource

from . import common
from .common import arrange, turned
from .flan_reference import splits

NO_YES = ("no", "yes")
FIELDS = ("sentence1", "sentence2", "options", "answer")

SENTENCE_ORIGINALS = (
    "Do these two sentences mean the same thing?\n{sentence1}\n{sentence2}",
    "Sentence 1: {sentence1}\nSentence 2: {sentence2}\n\nAre they paraphrases of each other?",
    '"{sentence1}"\n"{sentence2}"\n\nDo both sentences express the same meaning?',
    "Is the second sentence a rewording of the first?\n\nFirst: {sentence1}\nSecond: {sentence2}",
    "{sentence1}\n\nDoes the sentence above say the same as the one below?\n\n"
    "{sentence2}\n\n{options}",
    "Decide whether the following pair of sentences are semantically equivalent.\n\n"
    "A: {sentence1}\nB: {sentence2}",
    'Can "{sentence1}" be restated as "{sentence2}"?',
    "Compare the two sentences below. Is their meaning identical?\n1. {sentence1}\n2. {sentence2}",
    "{sentence1}\n{sentence2}\n\nSame meaning or not?",
    'Reply "yes" if these two sentences say the same thing and "no" if they do not.'
    "\n\n{sentence1}\n{sentence2}",
)

QUESTION_ORIGINALS = (
    "Are these two questions asking the same thing?\n{sentence1}\n{sentence2}",
    "Question 1: {sentence1}\nQuestion 2: {sentence2}\n\nWould the answer to one also "
    "answer the other?",
    '"{sentence1}" and "{sentence2}": are these duplicate questions?',
    "Do the questions below have the same meaning?\n\nA: {sentence1}\nB: {sentence2}\n\n{options}",
    "{sentence1}\n\n{sentence2}\n\nAre the two questions above paraphrases?",
    'Someone asked "{sentence1}" and someone else asked "{sentence2}". Did they ask '
    "the same question?",
    "Check if these questions are duplicates.\n- {sentence1}\n- {sentence2}",
    "First question: {sentence1}\nSecond question: {sentence2}\nSame intent?",
    "Would one answer serve both of these questions?\n{sentence1}\n{sentence2}",
    "Two forum questions:\n{sentence1}\n{sentence2}\n\nShould they be merged as duplicates?",
)

STSB_TEMPLATES = arrange(
    "stsb",
    (
        "How similar in meaning are these sentences, from 0 (unrelated) to 5 (same)?\n\n"
        "{sentence1}\n{sentence2}",
        "Sentence A: {sentence1}\nSentence B: {sentence2}\n\nRate their semantic "
        "similarity on a scale of 0 to 5.",
        'On a 0-5 scale, how close is "{sentence1}" to "{sentence2}" in meaning?',
        "{sentence1}\n{sentence2}\n\nScore the similarity of the two sentences above "
        "(0 = different, 5 = equivalent).",
        "Give a similarity score between 0 and 5 for this pair.\n1) {sentence1}\n"
        "2) {sentence2}\n\n{options}",
        "Do these sentences mean the same? Answer with a number from 0 (no) to 5 (fully)."
        "\n\n{sentence1}\n{sentence2}",
        'Rate from 0 to 5 how much meaning these share: "{sentence1}" / "{sentence2}"',
        "Semantic similarity (0-5) of:\n{sentence1}\n{sentence2}",
    ),
    (
        turned(
            "{sentence1}\n\nWrite a sentence whose similarity to the one above is {answer} "
            "on a 0-5 scale.",
            "{sentence2}",
        ),
        turned(
            "{sentence2}\n\nGive a sentence that scores {answer} out of 5 in meaning "
            "similarity to this one.",
            "{sentence1}",
        ),
    ),
)


def _pair_fields(a: str, b: str, clean=None):
    def fn(ex):
        opts, answer = common.pick(NO_YES, ex["label"])
        s1, s2 = (ex[a], ex[b]) if clean is None else (clean(ex[a]), clean(ex[b]))
        return {"sentence1": s1, "sentence2": s2, "options": opts, "answer": answer}

    return fn


def _qqp_clean(text):
    return tf.strings.regex_replace(text, '""', "'")


def _stsb_fields(ex):
    return {
        "sentence1": ex["sentence1"],
        "sentence2": ex["sentence2"],
        "options": tf.constant(["0", "1", "2", "3", "4", "5"]),
        # FLAN: the similarity printed with no decimals ("%.0f": round half to even).
        "answer": tf.strings.as_string(ex["label"], precision=0),
    }


SPECS = (
    TaskSpec(
        name="mrpc",
        cluster="paraphrase",
        source=TfdsSource("glue/mrpc:2.0.0"),
        fields_fn=_pair_fields("sentence1", "sentence2"),
        fields=FIELDS,
        templates=arrange("mrpc", SENTENCE_ORIGINALS),
        rank_metrics=common.RANK_F1,
        splits=splits("mrpc"),
        primary_metric="accuracy",
        description="Microsoft Research Paraphrase Corpus (news sentence pairs)",
    ),
    TaskSpec(
        name="qqp",
        cluster="paraphrase",
        source=TfdsSource("glue/qqp:2.0.0"),
        fields_fn=_pair_fields("question1", "question2", clean=_qqp_clean),
        fields=FIELDS,
        templates=arrange("qqp", QUESTION_ORIGINALS),
        rank_metrics=common.RANK_F1,
        splits=splits("qqp"),
        primary_metric="accuracy",
        description="Quora Question Pairs: duplicate questions",
    ),
    TaskSpec(
        name="paws_wiki",
        cluster="paraphrase",
        source=TfdsSource("paws_wiki/labeled_final_tokenized:1.1.0"),
        fields_fn=_pair_fields("sentence1", "sentence2"),
        fields=FIELDS,
        # The last one asks for "yes"/"no" in words: FLAN shows no options there.
        templates=arrange("paws_wiki", SENTENCE_ORIGINALS),
        splits=splits("paws_wiki"),
        primary_metric="accuracy",
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
        splits=splits("stsb"),
        primary_metric="accuracy",
        description="Semantic Textual Similarity Benchmark, similarity rounded to 0-5",
    ),
)
