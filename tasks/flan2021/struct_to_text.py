"""Struct-to-text cluster: CommonGen, DART, E2E NLG, WebNLG (all from GEM)."""

from __future__ import annotations

import tensorflow as tf

from flan_jax.registry import TaskSpec
from flan_jax.sources import TfdsSource
from flan_jax.templates import Template

from . import common

FIELDS = ("data", "answer", "references")

COMMON_GEN_TEMPLATES = (
    Template("Write a sentence that uses all of these words: {data}"),
    Template("Concepts: {data}\n\nWrite a sentence about everyday life containing them."),
    Template("Make a sentence using the following words.\n\n{data}"),
    Template("Here are some words: {data}. Produce a natural sentence that includes each of them."),
    Template("Generate a sentence with these keywords: {data}"),
    Template("Create a short, plausible sentence from the concepts below.\n{data}"),
    Template("Words: {data}\nSentence:"),
    Template("Describe a scene that involves: {data}"),
    Template(
        "What are the key concepts in this sentence?\n\n{answer}",
        targets="{data}",
        turned_around=True,
    ),
    Template(
        "List the main words of the following sentence, separated by commas.\n{answer}",
        targets="{data}",
        turned_around=True,
    ),
)

TRIPLE_TEMPLATES = (
    Template("Write a sentence that expresses all of the following facts.\n\n{data}"),
    Template("Data: {data}\n\nGenerate a sentence describing this data."),
    Template("Turn these triples into one fluent sentence: {data}"),
    Template("Here is some structured data:\n{data}\nDescribe it in plain English."),
    Template("Produce a short text that states these facts:\n{data}"),
    Template("{data}\n\nWhat sentence could be written from the data above?"),
    Template("Verbalize the following subject | relation | object triples.\n{data}"),
    Template("Facts: {data}\nSentence:"),
    Template(
        "Extract the facts of this sentence as subject | relation | object triples.\n\n{answer}",
        targets="{data}",
        turned_around=True,
    ),
    Template(
        "Sentence: {answer}\n\nWhich data does this sentence describe?",
        targets="{data}",
        turned_around=True,
    ),
)

E2E_TEMPLATES = (
    Template("Write a sentence describing a restaurant with these attributes: {data}"),
    Template("Attributes: {data}\n\nDescribe the restaurant in one or two sentences."),
    Template("Here is data about a restaurant: {data}\nWrite a short description of it."),
    Template("Turn this meaning representation into natural language.\n\n{data}"),
    Template("Generate a restaurant review snippet that mentions all of: {data}"),
    Template("{data}\n\nWhat would a sentence conveying this information look like?"),
    Template("Describe the place using every fact below.\n{data}"),
    Template("Restaurant facts: {data}\nText:"),
    Template(
        "List the restaurant's attributes mentioned in this sentence as key[value] pairs."
        "\n\n{answer}",
        targets="{data}",
        turned_around=True,
    ),
    Template(
        "Sentence: {answer}\nWhat structured data does it describe?",
        targets="{data}",
        turned_around=True,
    ),
)


def _fields(data: tf.Tensor, ex) -> dict[str, tf.Tensor]:
    return {"data": data, "answer": ex["target"], "references": ex["references"]}


def _common_gen_fields(ex):
    return _fields(common.join(ex["concepts"], ", "), ex)


def _dart_fields(ex):
    return _fields(common.join(ex["tripleset"], "; "), ex)


def _e2e_fields(ex):
    return _fields(ex["meaning_representation"], ex)


def _web_nlg_fields(ex):
    return _fields(common.join(ex["input"], "; "), ex)


GEN_METRICS = common.metric("rouge", "bleu")


def _spec(name, builder, fields_fn, templates, splits, description) -> TaskSpec:
    return TaskSpec(
        name=name,
        cluster="struct_to_text",
        source=TfdsSource(builder),
        fields_fn=fields_fn,
        fields=FIELDS,
        templates=templates,
        metrics=GEN_METRICS,
        postprocessor=common.references_postprocessor,
        splits=splits,
        description=description,
    )


SPECS = (
    # CommonGen's test references are hidden: its validation split is the test split.
    _spec(
        "common_gen",
        "gem/common_gen:1.1.0",
        _common_gen_fields,
        COMMON_GEN_TEMPLATES,
        common.hidden(large=True),
        "CommonGen: a sentence using a set of concepts",
    ),
    _spec(
        "dart",
        "gem/dart:1.1.0",
        _dart_fields,
        TRIPLE_TEMPLATES,
        common.labelled(),
        "DART: open-domain triples to text",
    ),
    _spec(
        "e2e_nlg",
        "gem/e2e_nlg:1.1.0",
        _e2e_fields,
        E2E_TEMPLATES,
        common.labelled(),
        "E2E NLG (cleaned): restaurant meaning representations to text",
    ),
    _spec(
        "web_nlg_en",
        "gem/web_nlg_en:1.1.0",
        _web_nlg_fields,
        TRIPLE_TEMPLATES,
        common.labelled(),
        "WebNLG (English): DBpedia triples to text",
    ),
)
