"""Commonsense cluster: COPA, HellaSwag, PiQA, StoryCloze (manual download)."""

from __future__ import annotations

import tensorflow as tf

from flan_jax.registry import TaskSpec
from flan_jax.sources import TfdsSource

from . import common
from .common import arrange, turned
from .flan_reference import splits

STORY_CLOZE_MANUAL = (
    "request the ROCStories Story Cloze Test (spring 2016) files at "
    "https://www.cs.rochester.edu/nlp/rocstories/, rename the validation and test CSVs to "
    "cloze_test_val__spring2016.csv and cloze_test_test__spring2016.csv, put them in "
    "<data_dir>/downloads/manual/ and run `tfds build story_cloze/2016 --data_dir=<data_dir>`"
)

COPA_TEMPLATES = arrange(
    "copa",
    (
        "{premise}\n\nWhat was the {question} of this?",
        "Here is a premise: {premise}\n\nWhich of the following is more likely its {question}?",
        "{premise} {connector_cap}...",
        "Pick the more plausible {question} of the event below.\n\n{premise}",
        'Premise: "{premise}"\nWhat is the most likely {question}?\n\n{options}',
        "Complete the sentence: {premise_nodot} {connector}",
        "{premise}\nQuestion: which option is the {question}?",
        "Think about this situation: {premise}\nWhich alternative better explains the {question}?",
    ),
    (
        turned("Write one sentence about something that happened.", "{premise}"),
        turned("Write two sentences, the second following from the first.", "{answer} {premise}"),
    ),
)


def _copa_fields(ex):
    opts = tf.stack([ex["choice1"], ex["choice2"]])
    is_cause = tf.equal(ex["question"], "cause")
    connector = tf.where(is_cause, "because", "so")
    premise = common.strip(ex["premise"])
    return {
        "premise": premise,
        "premise_nodot": tf.strings.regex_replace(premise, r"[.!?]$", ""),
        "question": ex["question"],
        "connector": connector,
        "connector_cap": tf.where(is_cause, "Because", "So"),
        "options": opts,
        "answer": tf.gather(opts, tf.cast(ex["label"], tf.int32)),
    }


HELLASWAG_TEMPLATES = arrange(
    "hellaswag",
    (
        "How does the following text most likely continue?\n\n{context}",
        "{context}\n\nWhat comes next?",
        "Choose the best ending.\n\nStart: {context}",
        "{context}...\n\nWhich of the following is the most natural continuation?",
        "Complete the description with the most sensible ending.\n{context}\n\n{options}",
        "Read the beginning below and pick what follows it.\n\n{context}",
        "Context: {context}\nNext:",
        "What is the most logical next event?\n\n{context}",
        "{context}\n\nFinish this text.",
        "Here is the start of a how-to or activity description:\n{context}\n\nHow does it go on?",
    ),
)

STORY_TEMPLATES = arrange(
    "story_cloze",
    (
        "How does the following story most likely end?\n\n{context}",
        "{context}\n\nWhat happens next?",
        "Choose the best last sentence.\n\nStory: {context}",
        "{context}\n\nWhich of the following is the most natural ending?",
        "Complete the story with the most sensible ending.\n{context}\n\n{options}",
        "Read the beginning below and pick the sentence that ends it.\n\n{context}",
        "Story so far: {context}\nLast sentence:",
        "What is the most logical final event of this story?\n\n{context}",
    ),
    (
        turned("Write a short story whose last sentence is: {answer}", "{context} {answer}"),
        turned("Last line of a story: {answer}\n\nWrite the whole story.", "{context} {answer}"),
    ),
)


def _endings_fields(offset: int = 0):
    def fn(ex):
        opts = ex["endings"]
        return {
            "context": ex["context"],
            "options": opts,
            "answer": tf.gather(opts, tf.cast(ex["label"], tf.int32) - offset),
        }

    return fn


def _hellaswag_fields(ex):
    # FLAN's cleaning: drop "[header] " and turn the other "[step] "-style tags into newlines.
    context = tf.strings.regex_replace(ex["context"], r"\[header\]\s", "")
    context = tf.strings.regex_replace(context, r"\[.*?\]\s", "\n")
    opts = tf.strings.regex_replace(ex["endings"], r"\[.*?\]\s", "")
    return {
        "context": context,
        "options": opts,
        "answer": tf.gather(opts, tf.cast(ex["label"], tf.int32)),
    }


PIQA_TEMPLATES = arrange(
    "piqa",
    (
        "Goal: {goal}\n\nWhich is the better way to do it?",
        "How would you accomplish this: {goal}",
        "{goal}\n\nChoose the more sensible solution.",
        "Pick the method that achieves the goal below.\n\n{goal}\n\n{options}",
        "What is the best way to {goal_lower}",
        "Here is a goal: {goal}\nWhich solution makes more sense?",
        "Physical commonsense: {goal}",
        "To reach this goal, which would you do?\n{goal}",
    ),
    (
        turned("Name an everyday task that needs some knowledge of how objects behave.", "{goal}"),
        turned("Give an example of a practical goal someone might want to reach.", "{goal}"),
    ),
)


def _piqa_fields(ex):
    opts = tf.stack([ex["sol1"], ex["sol2"]])
    goal = common.strip(ex["goal"])
    return {
        "goal": goal,
        "goal_lower": tf.strings.join(
            [tf.strings.lower(tf.strings.substr(goal, 0, 1)), tf.strings.substr(goal, 1, -1)]
        ),
        "options": opts,
        "answer": tf.gather(opts, tf.cast(ex["label"], tf.int32)),
    }


SPECS = (
    TaskSpec(
        name="copa",
        cluster="commonsense",
        source=TfdsSource("super_glue/copa:1.0.2"),
        fields_fn=_copa_fields,
        fields=(
            "premise",
            "premise_nodot",
            "question",
            "connector",
            "connector_cap",
            "options",
            "answer",
        ),
        templates=COPA_TEMPLATES,
        splits=splits("copa"),
        primary_metric="accuracy",
        description="Choice of Plausible Alternatives: the cause or effect of a premise",
    ),
    TaskSpec(
        name="hellaswag",
        cluster="commonsense",
        source=TfdsSource("hellaswag:1.1.0"),
        fields_fn=_hellaswag_fields,
        fields=("context", "options", "answer"),
        templates=HELLASWAG_TEMPLATES,
        splits=splits("hellaswag"),
        filter_fn=common.label_ok(num_classes=4),
        primary_metric="accuracy",
        description="HellaSwag: the most plausible continuation of an activity description",
    ),
    TaskSpec(
        name="piqa",
        cluster="commonsense",
        source=TfdsSource("piqa:1.0.0"),
        fields_fn=_piqa_fields,
        fields=("goal", "goal_lower", "options", "answer"),
        templates=PIQA_TEMPLATES,
        splits=splits("piqa"),
        primary_metric="accuracy",
        description="Physical Interaction QA: the better of two solutions to a goal",
    ),
    TaskSpec(
        name="story_cloze",
        cluster="commonsense",
        source=TfdsSource("story_cloze/2016:1.0.0", manual_download=STORY_CLOZE_MANUAL),
        fields_fn=_endings_fields(offset=1),  # AnswerRightEnding is 1-based
        fields=("context", "options", "answer"),
        templates=STORY_TEMPLATES,
        # No train split: FLAN trains on the validation stories; dev = their last 200.
        splits=splits("story_cloze"),
        primary_metric="accuracy",
        filter_fn=lambda ex: tf.logical_and(ex["label"] >= 1, ex["label"] <= 2),
        description="Story Cloze Test 2016: the right ending of a four-sentence story",
    ),
)
