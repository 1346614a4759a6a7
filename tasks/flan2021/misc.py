"""Misc. cluster: CoQA, QuAC, TREC, CoLA, WiC, Math (linear 1-d), Fix punctuation.

Fix punctuation is derived: English sentences of ``para_crawl/enda`` with their punctuation
removed and lower-cased (our TF preprocessing in ``_fix_punct_fields``); the target is the
original sentence.
"""

from __future__ import annotations

import tensorflow as tf

from flan_jax import metrics as metrics_lib
from flan_jax.registry import TaskSpec
from flan_jax.sources import TfdsSource
from flan_jax.templates import Template

from . import common


def _numbered(items: tf.Tensor) -> tf.Tensor:
    """``1. a\\n2. b`` from a 1-D string tensor."""
    n = tf.size(items)
    numbers = tf.strings.as_string(tf.range(1, n + 1))
    return tf.strings.reduce_join(tf.strings.join([numbers, ". ", items]), separator="\n")


COQA_TEMPLATES = (
    Template("{story}\n\nAnswer the following questions:\n{questions}"),
    Template("Read the text and answer the questions.\n\n{story}\n\n{questions}"),
    Template("{story}\n\nBased on the story, answer these questions in order.\n{questions}"),
    Template("Story: {story}\n\nQuestions:\n{questions}\n\nAnswers:"),
    Template(
        "Here is a passage:\n{story}\n\nNow answer each numbered question briefly.\n{questions}"
    ),
    Template("{questions}\n\nAnswer the questions above using this text:\n{story}"),
    Template("Give short answers (one line each).\n\nText: {story}\n\n{questions}"),
    Template("{story}\n\nAnswer the questions:\n{questions}\n\nNumbered answers:"),
    Template(
        "{story}\n\nWrite a numbered list of questions that have these answers:\n{answer}",
        targets="{questions}",
        turned_around=True,
    ),
)


def _coqa_fields(ex):
    return {
        "story": ex["story"],
        "questions": _numbered(ex["questions"]),
        "answer": _numbered(ex["answers"]["input_text"]),
    }


QUAC_TEMPLATES = (
    Template("{title} ({section})\n\n{context}\n\nQ: {question}\nA:"),
    Template(
        "Background: {background}\n\nText: {context}\n\nAnswer the question with a span "
        "of the text, or say CANNOTANSWER: {question}"
    ),
    Template("{context}\n\nUsing the passage about {title}, answer: {question}"),
    Template(
        "Read this section ({section}) of an article about {title}.\n\n{context}\n\n{question}"
    ),
    Template("{background}\n\n{context}\n\nQuestion: {question}\nAnswer (quote the text):"),
    Template("Answer from the text if you can.\n\nText: {context}\n\nQuestion: {question}"),
    Template("{context}\n\n{question}"),
    Template("Topic: {title}\nPassage: {context}\nQuestion: {question}"),
    Template(
        '{context}\n\nWrite a question about {title} that this passage answers with "{answer}".',
        targets="{question}",
        turned_around=True,
    ),
)


def _quac_fields(ex):
    answer = ex["orig_answer"]["text"]
    return {
        "title": ex["title"],
        "section": ex["section_title"],
        "background": ex["background"],
        "context": ex["context"],
        "question": ex["question"],
        "answer": answer,
        "references": tf.concat([tf.reshape(answer, [1]), ex["answers"]["text"]], axis=0),
    }


# TREC's coarse classes in the builder's label order.
TREC_CLASSES = ("description", "entity", "abbreviation", "human", "numeric", "location")

TREC_TEMPLATES = (
    Template("What type of thing is this question asking about?\n\n{text}", options=True),
    Template("Question: {text}\n\nWhat kind of answer does it expect?", options=True),
    Template("Classify the question by its answer type.\n\n{text}", options=True),
    Template(
        "{text}\n\nWould the answer be a description, an entity, an abbreviation, a person, "
        "a number or a location?",
        options=True,
    ),
    Template('Which category best describes the answer to "{text}"?', options=True),
    Template("Here is a question: {text}\nWhat is its answer category?\n\n{options}", options=True),
    Template("Determine the question type.\n{text}", options=True),
    Template("{text}\n\nThe answer to this question is a kind of", options=True),
    Template(
        "Is this question asking for a description, entity, abbreviation, human, numeric "
        "value or location?\n\n{text}"
    ),
    Template(
        "Write a question whose answer would be a {answer}.", targets="{text}", turned_around=True
    ),
)


def _trec_fields(ex):
    opts, answer = common.pick(TREC_CLASSES, ex["label-coarse"])
    return {"text": ex["text"], "options": opts, "answer": answer}


COLA_TEMPLATES = (
    Template("Is the following sentence grammatically acceptable?\n\n{sentence}", options=True),
    Template(
        'Sentence: "{sentence}"\nWould a linguist consider this sentence correct?', options=True
    ),
    Template("{sentence}\n\nIs this a well-formed English sentence?", options=True),
    Template(
        "Check the grammar of this sentence. Is it acceptable?\n{sentence}\n\n{options}",
        options=True,
    ),
    Template('Does "{sentence}" follow the rules of English grammar?', options=True),
    Template("Judge the sentence below: is it grammatical?\n\n{sentence}", options=True),
    Template("{sentence}\n\nCould a native speaker say this?", options=True),
    Template("Grammatical acceptability: {sentence}", options=True),
    Template("Is this sentence grammatical? Answer yes or no.\n\n{sentence}"),
    Template(
        "Write an English sentence. Its grammar should be {quality}.",
        targets="{sentence}",
        turned_around=True,
    ),
)


def _cola_fields(ex):
    opts, answer = common.pick(("no", "yes"), ex["label"])
    _, quality = common.pick(("broken", "correct"), ex["label"])
    return {"sentence": ex["sentence"], "options": opts, "answer": answer, "quality": quality}


WIC_TEMPLATES = (
    Template(
        'Does the word "{word}" mean the same thing in these two sentences?\n{sentence1}'
        "\n{sentence2}",
        options=True,
    ),
    Template(
        'Sentence A: {sentence1}\nSentence B: {sentence2}\n\nIs "{word}" used with the '
        "same meaning in A and B?",
        options=True,
    ),
    Template('{sentence1}\n{sentence2}\n\nSame sense of "{word}" in both sentences?', options=True),
    Template(
        "Word: {word}\n\n1. {sentence1}\n2. {sentence2}\n\nDoes the word have the same "
        "meaning in both?\n\n{options}",
        options=True,
    ),
    Template(
        'Here is a word: "{word}". In "{sentence1}" and "{sentence2}", is its meaning identical?',
        options=True,
    ),
    Template(
        'Decide whether "{word}" is used in the same sense.\n\n{sentence1}\n\n{sentence2}',
        options=True,
    ),
    Template(
        'Compare the meaning of "{word}" in the two sentences below.\n- {sentence1}\n- '
        "{sentence2}\nIs it the same?",
        options=True,
    ),
    Template(
        "Word in context: {word}\nFirst use: {sentence1}\nSecond use: {sentence2}", options=True
    ),
    Template(
        'Write a sentence using "{word}" in {relation} sense as in: {sentence1}',
        targets="{sentence2}",
        turned_around=True,
    ),
)


def _wic_fields(ex):
    opts, answer = common.pick(("no", "yes"), ex["label"])
    _, relation = common.pick(("a different", "the same"), ex["label"])
    return {
        "word": ex["word"],
        "sentence1": ex["sentence1"],
        "sentence2": ex["sentence2"],
        "options": opts,
        "answer": answer,
        "relation": relation,
    }


MATH_TEMPLATES = (
    Template("{question}"),
    Template("Solve this equation: {question}"),
    Template("Math problem: {question}\nAnswer:"),
    Template("{question}\n\nWhat is the solution?"),
    Template("Find the value of the variable. {question}"),
    Template("Work out the answer: {question}"),
    Template("Q: {question}\nA:"),
    Template("Here is a linear equation problem. {question}"),
    Template("Answer with a number only.\n\n{question}"),
    Template(
        "Write a linear equation problem whose solution is {answer}.",
        targets="{question}",
        turned_around=True,
    ),
)


def _math_fields(ex):
    # Some builder versions store the raw bytes repr, e.g. "b'Solve 2*x = 4 for x.\\n'".
    def clean(t):
        t = tf.strings.regex_replace(t, r"^b'", "")
        t = tf.strings.regex_replace(t, r"(\\n)?'$", "")
        return common.strip(t)

    return {"question": clean(ex["question"]), "answer": clean(ex["answer"])}


FIX_PUNCT_TEMPLATES = (
    Template("Add punctuation and capitalization to this text: {unpunctuated}"),
    Template("{unpunctuated}\n\nRestore the punctuation of the sentence above."),
    Template("Fix the punctuation: {unpunctuated}"),
    Template(
        "This sentence lost its punctuation and capital letters:\n{unpunctuated}\n\n"
        "Write it correctly."
    ),
    Template("Correct the casing and punctuation.\n\n{unpunctuated}"),
    Template("Please punctuate: {unpunctuated}"),
    Template("Text without punctuation: {unpunctuated}\nPunctuated text:"),
    Template("Make this readable by adding commas, periods and capitals: {unpunctuated}"),
    Template(
        "Remove all punctuation and capitals from this sentence.\n\n{answer}",
        targets="{unpunctuated}",
        turned_around=True,
    ),
)


def _fix_punct_fields(ex):
    text = common.strip(ex["en"])
    bare = tf.strings.regex_replace(text, r"[^\pL\pN\s]", "")
    bare = tf.strings.regex_replace(tf.strings.lower(bare), r"\s+", " ")
    return {"unpunctuated": common.strip(bare), "answer": text}


SPECS = (
    TaskSpec(
        name="coqa",
        cluster="misc",
        source=TfdsSource("coqa:1.0.0"),
        fields_fn=_coqa_fields,
        fields=("story", "questions", "answer"),
        templates=COQA_TEMPLATES,
        metrics=common.metric("rouge"),
        splits=common.hidden(large=False, test="test"),
        description="CoQA: a story and its conversation of questions, answered in one go",
    ),
    TaskSpec(
        name="quac",
        cluster="misc",
        source=TfdsSource("quac:1.0.0"),
        fields_fn=_quac_fields,
        fields=("title", "section", "background", "context", "question", "answer", "references"),
        templates=QUAC_TEMPLATES,
        metrics=common.metric("squad"),
        postprocessor=common.references_postprocessor,
        splits=common.hidden(large=True),
        description="QuAC: information-seeking questions answered with a span (or CANNOTANSWER)",
    ),
    TaskSpec(
        name="trec",
        cluster="misc",
        source=TfdsSource("trec:1.0.0"),
        fields_fn=_trec_fields,
        fields=("text", "options", "answer"),
        templates=TREC_TEMPLATES,
        splits=common.hidden(large=False, test="test"),
        description="TREC question classification (6 coarse answer types)",
    ),
    TaskSpec(
        name="cola",
        cluster="misc",
        source=TfdsSource("glue/cola:2.0.0"),
        fields_fn=_cola_fields,
        fields=("sentence", "options", "answer", "quality"),
        templates=COLA_TEMPLATES,
        rank_metrics=(metrics_lib.rank_classification_mcc,),
        metrics=common.metric("accuracy", "matthews_corrcoef"),
        splits=common.hidden(large=False),
        description="CoLA: grammatical acceptability of a sentence",
    ),
    TaskSpec(
        name="wic",
        cluster="misc",
        source=TfdsSource("super_glue/wic:1.0.2"),
        fields_fn=_wic_fields,
        fields=("word", "sentence1", "sentence2", "options", "answer", "relation"),
        templates=WIC_TEMPLATES,
        splits=common.hidden(large=False),
        description="Word-in-Context: is a word used in the same sense in two sentences",
    ),
    TaskSpec(
        name="math_dataset",
        cluster="misc",
        source=TfdsSource("math_dataset/algebra__linear_1d:1.0.0"),
        fields_fn=_math_fields,
        fields=("question", "answer"),
        templates=MATH_TEMPLATES,
        splits=common.hidden(large=True, test="test"),
        description="DeepMind Mathematics: solve a linear equation in one variable",
    ),
    TaskSpec(
        name="fix_punct",
        cluster="misc",
        source=TfdsSource("para_crawl/enda:1.2.0"),
        fields_fn=_fix_punct_fields,
        fields=("unpunctuated", "answer"),
        templates=FIX_PUNCT_TEMPLATES,
        metrics=common.metric("edit_distance"),
        splits=common.train_only(),
        description="Fix punctuation: restore punctuation and case (derived from ParaCrawl en-da)",
    ),
)
