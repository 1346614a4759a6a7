"""Coreference cluster: DPR (definite pronoun resolution), Winogrande, WSC (SuperGLUE)."""

from __future__ import annotations

import tensorflow as tf

from flan_jax.registry import TaskSpec
from flan_jax.sources import TfdsSource
from flan_jax.templates import Template

from . import common

DPR_TEMPLATES = (
    Template(
        '{sentence}\n\nWho or what does "{pronoun}" refer to in the sentence above?', options=True
    ),
    Template(
        "Sentence: {sentence}\nPronoun: {pronoun}\n\nWhich candidate is the pronoun about?",
        options=True,
    ),
    Template('In "{sentence}", what is "{pronoun}"?', options=True),
    Template(
        'Resolve the pronoun "{pronoun}" in this sentence.\n\n{sentence}\n\n{options}', options=True
    ),
    Template('{sentence}\n\nHere, "{pronoun}" stands for', options=True),
    Template(
        'Read the sentence and decide what the word "{pronoun}" refers to.\n{sentence}',
        options=True,
    ),
    Template('Which noun does "{pronoun}" point back to?\n\n{sentence}', options=True),
    Template('Pronoun resolution: {sentence}\nThe pronoun "{pronoun}" means:', options=True),
    Template('{sentence}\n\nWhat does "{pronoun}" refer to?'),
    Template(
        'Write a sentence in which the pronoun "{pronoun}" refers to {answer}.',
        targets="{sentence}",
        turned_around=True,
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


WINOGRANDE_TEMPLATES = (
    Template("{sentence}\n\nWhat is the best way to fill the blank (_)?", options=True),
    Template("Fill in the blank: {sentence}", options=True),
    Template("Which option completes the sentence correctly?\n\n{sentence}", options=True),
    Template("Sentence: {sentence}\n\nWho or what does _ stand for?\n\n{options}", options=True),
    Template("{sentence}\n\nReplace _ with the right choice.", options=True),
    Template(
        "In the sentence below, the blank refers to one of two things. Which?\n{sentence}",
        options=True,
    ),
    Template("Complete this sentence with the more sensible option.\n{sentence}", options=True),
    Template("Choose the word for the gap: {sentence}", options=True),
    Template("{sentence}\n\nWhat goes in the blank?"),
    Template(
        'Write a sentence with a blank (_) that should be filled by "{answer}" rather '
        'than "{other}".',
        targets="{sentence}",
        turned_around=True,
    ),
)


def _winogrande_fields(ex):
    opts = tf.stack([ex["option1"], ex["option2"]])
    label = tf.cast(ex["label"], tf.int32)
    return {
        "sentence": ex["sentence"],
        "options": opts,
        "answer": tf.gather(opts, label),
        "other": tf.gather(opts, 1 - label),
    }


WSC_TEMPLATES = (
    Template('{text}\n\nIn the passage above, does "{pronoun}" refer to "{noun}"?', options=True),
    Template('Passage: {text}\n\nQuestion: is "{pronoun}" the same as "{noun}"?', options=True),
    Template('{text}\n\nDoes the pronoun "{pronoun}" stand for {noun}?', options=True),
    Template(
        'Read the text and answer.\n\n{text}\n\nHere, is "{pronoun}" about "{noun}"?\n\n{options}',
        options=True,
    ),
    Template(
        'In "{text}", can "{pronoun}" be replaced by "{noun}" without changing the meaning?',
        options=True,
    ),
    Template(
        "Coreference check: {text}\nPronoun: {pronoun}\nCandidate: {noun}\nSame entity?",
        options=True,
    ),
    Template('{text}\n\nWho is "{pronoun}"? Is it {noun}?', options=True),
    Template(
        'Decide whether "{pronoun}" and "{noun}" refer to the same thing.\n\n{text}', options=True
    ),
    Template(
        'Write a sentence in which "{pronoun}" {relation} "{noun}".',
        targets="{text}",
        turned_around=True,
    ),
)


def _wsc_fields(ex):
    opts, answer = common.pick(("no", "yes"), ex["label"])
    _, relation = common.pick(("does not refer to", "refers to"), ex["label"])
    return {
        "text": ex["text"],
        "pronoun": ex["span2_text"],
        "noun": ex["span1_text"],
        "options": opts,
        "answer": answer,
        "relation": relation,
    }


SPECS = (
    TaskSpec(
        name="definite_pronoun_resolution",
        cluster="coreference",
        source=TfdsSource("definite_pronoun_resolution:1.1.0"),
        fields_fn=_dpr_fields,
        fields=("sentence", "pronoun", "options", "answer"),
        templates=DPR_TEMPLATES,
        splits=common.hidden(large=False, test="test"),
        description="Definite Pronoun Resolution: which of two nouns a pronoun refers to",
    ),
    TaskSpec(
        name="winogrande",
        cluster="coreference",
        source=TfdsSource("winogrande:1.2.0"),
        fields_fn=_winogrande_fields,
        fields=("sentence", "options", "answer", "other"),
        templates=WINOGRANDE_TEMPLATES,
        splits=common.hidden(large=True, train="train_xl"),
        description="Winogrande (XL): fill a blank with one of two entities",
    ),
    TaskSpec(
        name="wsc",
        cluster="coreference",
        source=TfdsSource("super_glue/wsc:1.0.2"),
        fields_fn=_wsc_fields,
        fields=("text", "pronoun", "noun", "options", "answer", "relation"),
        templates=WSC_TEMPLATES,
        splits=common.hidden(large=False, holdout=50),
        description="Winograd Schema Challenge (SuperGLUE): does the pronoun refer to the noun",
    ),
)
