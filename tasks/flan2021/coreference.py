"""Coreference cluster: DPR (definite pronoun resolution), Winogrande, WSC (SuperGLUE), and
WSC273 (evaluation only)."""

from __future__ import annotations

import tensorflow as tf

from flan_jax.registry import TaskSpec
from flan_jax.sources import TfdsSource

from . import common
from .common import arrange
from .flan_reference import splits

DPR_TEMPLATES = arrange(
    "definite_pronoun_resolution",
    (
        '{sentence}\n\nWho or what does "{pronoun}" refer to in the sentence above?',
        "Sentence: {sentence}\nPronoun: {pronoun}\n\nWhich candidate is the pronoun about?",
        'In "{sentence}", what is "{pronoun}"?',
        'Resolve the pronoun "{pronoun}" in this sentence.\n\n{sentence}\n\n{options}',
        '{sentence}\n\nHere, "{pronoun}" stands for',
        'Read the sentence and decide what the word "{pronoun}" refers to.\n{sentence}',
        'Which noun does "{pronoun}" point back to?\n\n{sentence}',
        'Pronoun resolution: {sentence}\nThe pronoun "{pronoun}" means:',
        '{sentence}\n\nWhat does "{pronoun}" refer to?',
        'Who is meant by "{pronoun}" in this sentence?\n{sentence}',
    ),
)


def _dpr_fields(ex):
    opts = ex["candidates"]
    return {
        "sentence": ex["sentence"],
        "pronoun": ex["pronoun"],
        "options": opts,
        "answer": tf.gather(opts, tf.cast(ex["label"], tf.int32)),
    }


# Winogrande as FLAN frames it: the sentence up to the blank, and two continuations (each
# option followed by the rest of the sentence). FLAN shows the options in five templates only.
_WINO = (
    "How should this sentence be completed?\n\n{context}",
    "Finish the sentence.\n\n{context}",
    "{context}\n\nWhat is the most sensible way to continue?",
    "Continue this text: {context}",
    "Here is the beginning of a sentence:\n{context}\n\nWrite the rest.",
)
WINOGRANDE_TEMPLATES = arrange("winogrande", _WINO + _WINO)


def _winogrande_fields(ex):
    parts = tf.concat([tf.strings.split(ex["sentence"], "_"), [""]], axis=0)
    options = tf.strings.join([tf.stack([ex["option1"], ex["option2"]]), parts[1]])
    return {
        "context": common.strip(parts[0]),
        "options": options,
        "answer": tf.gather(options, tf.cast(ex["label"], tf.int32)),
    }


WSC_TEMPLATES = arrange(
    "wsc",
    (
        '{text}\n\nIn the passage above, does "{pronoun}" refer to "{noun}"?',
        'Passage: {text}\n\nQuestion: is "{pronoun}" the same as "{noun}"?',
        '{text}\n\nDoes the pronoun "{pronoun}" stand for {noun}?',
        'Read the text and answer.\n\n{text}\n\nHere, is "{pronoun}" about "{noun}"?\n\n{options}',
        'In "{text}", can "{pronoun}" be replaced by "{noun}" without changing the meaning?',
        "Coreference check: {text}\nPronoun: {pronoun}\nCandidate: {noun}\nSame entity?",
        '{text}\n\nWho is "{pronoun}"? Is it {noun}?',
        'Decide whether "{pronoun}" and "{noun}" refer to the same thing.\n\n{text}',
        'Does "{noun}" name what "{pronoun}" points to in this text?\n{text}',
        '{text}\n\nIs "{noun}" the referent of "{pronoun}"?',
    ),
)


def _wsc_fields(ex):
    opts, answer = common.pick(("no", "yes"), ex["label"])
    return {
        "text": ex["text"],
        "pronoun": ex["span2_text"],
        "noun": ex["span1_text"],
        "options": opts,
        "answer": answer,
    }


WSC273_TEMPLATES = arrange(
    "wsc273",
    (
        "{context}",
        "Finish this sentence.\n\n{context}",
        "How does the following sentence go on?\n\n{context}",
        "{context}\n\nWhich continuation makes the most sense?",
        "Complete the text: {context}",
        "Here is the start of a sentence:\n{context}\nWhat comes after it?",
        "Pick the ending that fits.\n\n{context}",
        "{context}...\n\nContinue the sentence.",
        "Read the beginning and choose how it ends.\n{context}",
        "Write the rest of this sentence: {context}",
    ),
)


def _wsc273_fields(ex):
    # FLAN's framing: the text before the pronoun, then each candidate followed by the rest.
    start = common.strip(tf.strings.substr(ex["text"], 0, ex["pronoun_start"]))
    rest = common.strip(tf.strings.substr(ex["text"], ex["pronoun_end"], -1))
    options = tf.strings.join(
        [tf.stack([ex["option1_normalized"], ex["option2_normalized"]]), rest], separator=" "
    )
    return {
        "context": start,
        "options": options,
        "answer": tf.gather(options, tf.cast(ex["label"], tf.int32)),
    }


SPECS = (
    TaskSpec(
        name="definite_pronoun_resolution",
        cluster="coreference",
        source=TfdsSource("definite_pronoun_resolution:1.1.0"),
        fields_fn=_dpr_fields,
        fields=("sentence", "pronoun", "options", "answer"),
        templates=DPR_TEMPLATES,
        splits=splits("definite_pronoun_resolution"),
        primary_metric="accuracy",
        description="Definite Pronoun Resolution: which of two nouns a pronoun refers to",
    ),
    TaskSpec(
        name="winogrande",
        cluster="coreference",
        source=TfdsSource("winogrande:1.2.0"),
        fields_fn=_winogrande_fields,
        fields=("context", "options", "answer"),
        templates=WINOGRANDE_TEMPLATES,
        splits=splits("winogrande"),
        primary_metric="accuracy",
        description="Winogrande (XL): fill a blank with one of two entities",
    ),
    TaskSpec(
        name="wsc",
        cluster="coreference",
        source=TfdsSource("super_glue/wsc:1.0.2"),
        fields_fn=_wsc_fields,
        fields=("text", "pronoun", "noun", "options", "answer"),
        templates=WSC_TEMPLATES,
        splits=splits("wsc"),
        primary_metric="accuracy",
        description="Winograd Schema Challenge (SuperGLUE): does the pronoun refer to the noun",
    ),
    TaskSpec(
        name="wsc273",
        cluster="coreference",
        source=TfdsSource("wsc273:1.0.0"),
        fields_fn=_wsc273_fields,
        fields=("context", "options", "answer"),
        templates=WSC273_TEMPLATES,
        splits=splits("wsc273"),  # test only: evaluated, never trained on
        primary_metric="accuracy",
        description="WSC273, the original Winograd schemas (evaluation only, as in FLAN)",
    ),
)
