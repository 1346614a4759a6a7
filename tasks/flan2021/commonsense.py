"""Commonsense cluster: COPA, HellaSwag, PiQA, StoryCloze (manual download)."""

from __future__ import annotations

import tensorflow as tf

from flan_jax.registry import TaskSpec
from flan_jax.sources import TfdsSource
from flan_jax.templates import Template

from . import common

STORY_CLOZE_MANUAL = (
    "request the ROCStories Story Cloze Test (spring 2016) files at "
    "https://www.cs.rochester.edu/nlp/rocstories/, rename the validation and test CSVs to "
    "cloze_test_val__spring2016.csv and cloze_test_test__spring2016.csv, put them in "
    "<data_dir>/downloads/manual/ and run `tfds build story_cloze/2016 --data_dir=<data_dir>`"
)

COPA_TEMPLATES = (
    Template("{premise}\n\nWhat was the {question} of this?", options=True),
    Template(
        "Here is a premise: {premise}\n\nWhich of the following is more likely its {question}?",
        options=True,
    ),
    Template("{premise} {connector_cap}...", options=True),
    Template("Pick the more plausible {question} of the event below.\n\n{premise}", options=True),
    Template(
        'Premise: "{premise}"\nWhat is the most likely {question}?\n\n{options}', options=True
    ),
    Template("Complete the sentence: {premise_nodot} {connector}", options=True),
    Template("{premise}\nQuestion: which option is the {question}?", options=True),
    Template(
        "Think about this situation: {premise}\nWhich alternative better explains the {question}?",
        options=True,
    ),
    Template("Write a likely {question} of the following event.\n\n{premise}"),
    Template(
        '"{answer}" is the {question}. Describe a situation it could be the {question} of.',
        targets="{premise}",
        turned_around=True,
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


ENDING_TEMPLATES = (
    Template("How does the following text most likely continue?\n\n{context}", options=True),
    Template("{context}\n\nWhat comes next?", options=True),
    Template("Choose the best ending.\n\nStart: {context}", options=True),
    Template(
        "{context}...\n\nWhich of the following is the most natural continuation?", options=True
    ),
    Template(
        "Complete the story with the most sensible ending.\n{context}\n\n{options}", options=True
    ),
    Template(
        "Read the beginning below and pick the sentence that follows it.\n\n{context}", options=True
    ),
    Template("Context: {context}\nNext:", options=True),
    Template("What is the most logical next event?\n\n{context}", options=True),
    Template("Continue the following text.\n\n{context}"),
    Template(
        "Write a passage that could come right before this ending: {answer}",
        targets="{context}",
        turned_around=True,
    ),
)


def _endings_fields(offset: int = 0):
    def fn(ex):
        opts = ex["endings"]
        return {
            "context": common.strip(ex["context"]),
            "options": opts,
            "answer": tf.gather(opts, tf.cast(ex["label"], tf.int32) - offset),
        }

    return fn


def _hellaswag_fields(ex):
    out = _endings_fields()(ex)
    # Some contexts end mid-sentence: prepend the activity label for a little topic context.
    out["context"] = tf.strings.join([ex["activity_label"], ": ", out["context"]])
    return out


PIQA_TEMPLATES = (
    Template("Goal: {goal}\n\nWhich is the better way to do it?", options=True),
    Template("How would you accomplish this: {goal}", options=True),
    Template("{goal}\n\nChoose the more sensible solution.", options=True),
    Template("Pick the method that achieves the goal below.\n\n{goal}\n\n{options}", options=True),
    Template("What is the best way to {goal_lower}", options=True),
    Template("Here is a goal: {goal}\nWhich solution makes more sense?", options=True),
    Template("Physical commonsense: {goal}", options=True),
    Template("To reach this goal, which would you do?\n{goal}", options=True),
    Template("Describe how to do the following: {goal}"),
    Template(
        "Solution: {answer}\n\nWhat goal does this solution achieve?",
        targets="{goal}",
        turned_around=True,
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
        splits=common.hidden(large=False, holdout=50),
        description="Choice of Plausible Alternatives: the cause or effect of a premise",
    ),
    TaskSpec(
        name="hellaswag",
        cluster="commonsense",
        source=TfdsSource("hellaswag:1.1.0"),
        fields_fn=_hellaswag_fields,
        fields=("context", "options", "answer"),
        templates=ENDING_TEMPLATES,
        splits=common.hidden(large=True),
        filter_fn=common.label_ok(num_classes=4),
        description="HellaSwag: the most plausible continuation of an activity description",
    ),
    TaskSpec(
        name="piqa",
        cluster="commonsense",
        source=TfdsSource("piqa:1.0.0"),
        fields_fn=_piqa_fields,
        fields=("goal", "goal_lower", "options", "answer"),
        templates=PIQA_TEMPLATES,
        splits=common.hidden(large=False),
        description="Physical Interaction QA: the better of two solutions to a goal",
    ),
    TaskSpec(
        name="story_cloze",
        cluster="commonsense",
        source=TfdsSource("story_cloze/2016:1.0.0", manual_download=STORY_CLOZE_MANUAL),
        fields_fn=_endings_fields(offset=1),  # AnswerRightEnding is 1-based
        fields=("context", "options", "answer"),
        templates=ENDING_TEMPLATES,
        # No train split: FLAN trains on the validation stories; dev = their last 200.
        splits=common.hidden(large=False, train="validation", test="test"),
        filter_fn=lambda ex: tf.logical_and(ex["label"] >= 1, ex["label"] <= 2),
        description="Story Cloze Test 2016: the right ending of a four-sentence story",
    ),
)
