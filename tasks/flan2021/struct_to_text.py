"""Struct-to-text cluster: CommonGen, DART, E2E NLG, WebNLG (all from GEM)."""

from __future__ import annotations

import tensorflow as tf

from flan_jax.registry import TaskSpec
from flan_jax.sources import TfdsSource

from . import common
from .common import arrange, turned
from .flan_reference import splits

FIELDS = ("data", "answer", "references")

COMMON_GEN_TEMPLATES = arrange(
    "common_gen",
    (
        "Write a sentence that uses all of these words: {data}",
        "Concepts: {data}\n\nWrite a sentence about everyday life containing them.",
        "Make a sentence using the following words.\n\n{data}",
        "Here are some words: {data}. Produce a natural sentence that includes each of them.",
        "Generate a sentence with these keywords: {data}",
        "Create a short, plausible sentence from the concepts below.\n{data}",
    ),
    (
        turned("What are the key concepts in this sentence?\n\n{answer}", "{data}"),
        turned("List the main words of the following sentence.\n{answer}", "{data}"),
        turned("Which content words carry the meaning of this sentence?\n\n{answer}", "{data}"),
        turned(
            "Write a sentence, then list the concepts it contains.",
            "Sentence: {answer}\nConcepts: {data}",
        ),
    ),
)

TRIPLE_ORIGINALS = (
    "Write a sentence that expresses all of the following facts.\n\n{data}",
    "Data: {data}\n\nGenerate a sentence describing this data.",
    "Turn these facts into one fluent sentence: {data}",
    "Here is some structured data:\n{data}\nDescribe it in plain English.",
    "Produce a short text that states these facts:\n{data}",
    "{data}\n\nWhat sentence could be written from the data above?",
    "Verbalize the following facts.\n{data}",
    "Facts: {data}\nSentence:",
)
TRIPLE_TURNED = (
    turned("Extract the facts of this sentence as structured data.\n\n{answer}", "{data}"),
    turned("Sentence: {answer}\n\nWhich data does this sentence describe?", "{data}"),
)

E2E_TEMPLATES = arrange(
    "e2e_nlg",
    (
        "Write a sentence describing a restaurant with these attributes: {data}",
        "Attributes: {data}\n\nDescribe the restaurant in one or two sentences.",
        "Here is data about a restaurant: {data}\nWrite a short description of it.",
        "Turn this meaning representation into natural language.\n\n{data}",
        "Generate a restaurant review snippet that mentions all of: {data}",
        "{data}\n\nWhat would a sentence conveying this information look like?",
        "Describe the place using every fact below.\n{data}",
        "Restaurant facts: {data}\nText:",
        "Write a sentence about a restaurant from this data: {data}",
        "{data}\n\nExpress the data above as a sentence.",
    ),
)


def _fields(data: tf.Tensor, ex) -> dict[str, tf.Tensor]:
    # FLAN scores against every reference: the listed references plus the target.
    refs = tf.concat([ex["references"], tf.reshape(ex["target"], [1])], axis=0)
    return {"data": data, "answer": ex["target"], "references": refs}


def _common_gen_fields(ex):
    return _fields(common.join(ex["concepts"], ", "), ex)


def _dart_fields(ex):
    # FLAN drops bracketed cells such as "[TABLECONTEXT]" and "[TITLE]".
    triples = tf.strings.regex_replace(common.join(ex["tripleset"], "; "), r"\[(.*?)\]", "")
    return _fields(triples, ex)


def _e2e_fields(ex):
    mr = tf.strings.regex_replace(ex["meaning_representation"], r"\[", " = ")
    return _fields(tf.strings.regex_replace(mr, r"\]", ""), ex)


def _web_nlg_fields(ex):
    data = tf.strings.regex_replace(common.join(ex["input"], "; "), "_", " ")
    return _fields(tf.strings.regex_replace(data, r" \| ", ", "), ex)


GEN_METRICS = common.metric("rouge")


def _spec(name, builder, fields_fn, templates, description) -> TaskSpec:
    return TaskSpec(
        name=name,
        cluster="struct_to_text",
        source=TfdsSource(builder),
        fields_fn=fields_fn,
        fields=FIELDS,
        templates=templates,
        metrics=GEN_METRICS,
        postprocessor=common.references_postprocessor,
        splits=splits(name),
        primary_metric="rougeL",
        description=description,
    )


SPECS = (
    # Test references are hidden: FLAN takes dev from train and tests on validation.
    _spec(
        "common_gen",
        "gem/common_gen:1.1.0",
        _common_gen_fields,
        COMMON_GEN_TEMPLATES,
        "CommonGen: a sentence using a set of concepts",
    ),
    _spec(
        "dart",
        "gem/dart:1.1.0",
        _dart_fields,
        arrange("dart", TRIPLE_ORIGINALS, TRIPLE_TURNED),
        "DART: open-domain triples to text",
    ),
    _spec(
        "e2e_nlg",
        "gem/e2e_nlg:1.1.0",
        _e2e_fields,
        E2E_TEMPLATES,
        "E2E NLG (cleaned): restaurant meaning representations to text",
    ),
    _spec(
        "web_nlg_en",
        "gem/web_nlg_en:1.1.0",
        _web_nlg_fields,
        arrange("web_nlg_en", TRIPLE_ORIGINALS, TRIPLE_TURNED),
        "WebNLG (English): DBpedia triples to text",
    ),
)
