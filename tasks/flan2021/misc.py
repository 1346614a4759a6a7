"""Misc. cluster: CoQA, QuAC, TREC, CoLA, WiC, Math (linear 1-d), and FLAN's three text
formatting tasks (fix punctuation, true case, word segmentation).

The text formatting tasks are derived from the English side of ``para_crawl/enda`` as FLAN
derives them, each from its own slice: the sentence without punctuation, lower-cased, or
without spaces; the target is the original sentence.
"""

from __future__ import annotations

import tensorflow as tf

from flan_jax import metrics as metrics_lib
from flan_jax.registry import TaskSpec
from flan_jax.sources import TfdsSource

from . import common
from .common import arrange, turned
from .flan_reference import splits


def _numbered(items: tf.Tensor) -> tf.Tensor:
    """``1. a\\n2. b`` from a 1-D string tensor."""
    n = tf.size(items)
    numbers = tf.strings.as_string(tf.range(1, n + 1))
    return tf.strings.reduce_join(tf.strings.join([numbers, ". ", items]), separator="\n")


COQA_TEMPLATES = arrange(
    "coqa",
    (
        "{story}\n\nAnswer the following questions:\n{questions}",
        "Read the text and answer the questions.\n\n{story}\n\n{questions}",
        "{story}\n\nBased on the story, answer these questions in order.\n{questions}",
        "Story: {story}\n\nQuestions:\n{questions}\n\nAnswers:",
        "Here is a passage:\n{story}\n\nNow answer each numbered question briefly.\n{questions}",
        "{questions}\n\nAnswer the questions above using this text:\n{story}",
        "Give short answers (one line each).\n\nText: {story}\n\n{questions}",
        "{story}\n\nAnswer the questions:\n{questions}\n\nNumbered answers:",
        "Text: {story}\n\nReply to each question below with a short numbered answer.\n{questions}",
    ),
    (
        turned(
            "{story}\n\nWrite a numbered list of questions that have these answers:\n{answer}",
            "{questions}",
        ),
    ),
)


def _coqa_fields(ex):
    return {
        "story": ex["story"],
        "questions": _numbered(ex["questions"]),
        "answer": _numbered(ex["answers"]["input_text"]),
    }


QUAC_TEMPLATES = arrange(
    "quac",
    (
        "{title} ({section})\n\n{context}\n\nQ: {question}\nA:",
        "Background: {background}\n\nText: {context}\n\nAnswer the question with a span "
        "of the text, or say CANNOTANSWER: {question}",
        "{context}\n\nUsing the passage about {title}, answer: {question}",
        "Read this section ({section}) of an article about {title}.\n\n{context}\n\n{question}",
        "{background}\n\n{context}\n\nQuestion: {question}\nAnswer (quote the text):",
        "Answer from the text if you can.\n\nText: {context}\n\nQuestion: {question}",
        "{context}\n\n{question}",
        "Topic: {title}\nPassage: {context}\nQuestion: {question}",
    ),
    (
        turned("Who or what is this text about?\n\n{background}\n\n{context}", "{title}"),
        turned("{background}\n\n{context}\n\nAsk a question about this text.", "{question}"),
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
    }


# TREC's coarse classes in the builder's label order.
TREC_CLASSES = ("description", "entity", "abbreviation", "human", "numeric", "location")

TREC_TEMPLATES = arrange(
    "trec",
    (
        "What type of thing is this question asking about?\n\n{text}",
        "Question: {text}\n\nWhat kind of answer does it expect?",
        "Classify the question by its answer type.\n\n{text}",
        "{text}\n\nWould the answer be a description, an entity, an abbreviation, a person, "
        "a number or a location?",
        'Which category best describes the answer to "{text}"?',
        "Here is a question: {text}\nWhat is its answer category?\n\n{options}",
        "Determine the question type.\n{text}",
        "{text}\n\nThe answer to this question is a kind of",
        "What sort of information does this question want?\n{text}",
    ),
    (turned("Ask me any question.", "{text}"),),
)


def _trec_fields(ex):
    opts, answer = common.pick(TREC_CLASSES, ex["label-coarse"])
    return {"text": ex["text"], "options": opts, "answer": answer}


COLA_TEMPLATES = arrange(
    "cola",
    (
        "Is the following sentence grammatically acceptable?\n\n{sentence}",
        'Sentence: "{sentence}"\nWould a linguist consider this sentence correct?',
        "{sentence}\n\nIs this a well-formed English sentence?",
        "Check the grammar of this sentence. Is it acceptable?\n{sentence}\n\n{options}",
        'Does "{sentence}" follow the rules of English grammar?',
        "Judge the sentence below: is it grammatical?\n\n{sentence}",
        "{sentence}\n\nCould a native speaker say this?",
        "Grammatical acceptability: {sentence}",
    ),
    (
        turned("Write a short English sentence that is grammatically {answer}.", "{sentence}"),
        turned("Give an example sentence a linguist would judge {answer}.", "{sentence}"),
    ),
)


def _cola_fields(ex):
    opts, answer = common.pick(("unacceptable", "acceptable"), ex["label"])
    return {"sentence": ex["sentence"], "options": opts, "answer": answer}


WIC_TEMPLATES = arrange(
    "wic",
    (
        'Does the word "{word}" mean the same thing in these two sentences?\n{sentence1}'
        "\n{sentence2}",
        'Sentence A: {sentence1}\nSentence B: {sentence2}\n\nIs "{word}" used with the '
        "same meaning in A and B?",
        '{sentence1}\n{sentence2}\n\nSame sense of "{word}" in both sentences?',
        "Word: {word}\n\n1. {sentence1}\n2. {sentence2}\n\nDoes the word have the same "
        "meaning in both?\n\n{options}",
        'Here is a word: "{word}". In "{sentence1}" and "{sentence2}", is its meaning identical?',
        'Decide whether "{word}" is used in the same sense.\n\n{sentence1}\n\n{sentence2}',
        'Compare the meaning of "{word}" in the two sentences below.\n- {sentence1}\n- '
        "{sentence2}\nIs it the same?",
        "Word in context: {word}\nFirst use: {sentence1}\nSecond use: {sentence2}",
        'What does "{word}" mean in each of these sentences: the same or different?\n'
        "{sentence1}\n{sentence2}",
        '"{word}" appears in both sentences below. Is its sense shared?\n\n{sentence1}\n'
        "{sentence2}",
    ),
)


def _wic_fields(ex):
    opts, answer = common.pick(("different meanings", "the same meaning"), ex["label"])
    return {
        "word": ex["word"],
        "sentence1": ex["sentence1"],
        "sentence2": ex["sentence2"],
        "options": opts,
        "answer": answer,
    }


MATH_TEMPLATES = arrange(
    "math_dataset",
    (
        "{question}",
        "Solve this equation: {question}",
        "Math problem: {question}\nAnswer:",
        "{question}\n\nWhat is the solution?",
        "Find the value of the variable. {question}",
        "Work out the answer: {question}",
        "Q: {question}\nA:",
        "Here is a linear equation problem. {question}",
        "Answer with a number only.\n\n{question}",
        "Solve for the unknown.\n{question}",
    ),
)


def _math_fields(ex):
    # Some builder versions store the raw bytes repr, e.g. "b'Solve 2*x = 4 for x.\\n'".
    def clean(t):
        t = tf.strings.regex_replace(t, r"^b'", "")
        t = tf.strings.regex_replace(t, r"(\\n)?'$", "")
        return common.strip(t)

    return {"question": clean(ex["question"]), "answer": clean(ex["answer"])}


FIX_PUNCT_TEMPLATES = arrange(
    "fix_punct",
    (
        "Add punctuation to this text: {unpunctuated}",
        "{unpunctuated}\n\nRestore the punctuation of the sentence above.",
        "Fix the punctuation: {unpunctuated}",
        "This sentence lost its punctuation marks:\n{unpunctuated}\n\nWrite it correctly.",
        "Put the commas, periods and other marks back.\n\n{unpunctuated}",
        "Please punctuate: {unpunctuated}",
        "Text without punctuation: {unpunctuated}\nPunctuated text:",
        "Make this readable by adding punctuation: {unpunctuated}",
        "{unpunctuated}\n\nRewrite it with correct punctuation.",
        "Insert the missing punctuation.\n{unpunctuated}",
    ),
)

TRUE_CASE_TEMPLATES = arrange(
    "true_case",
    (
        "{lower}\n\nRewrite the text above with correct capitalization.",
        "Fix the casing of this sentence: {lower}",
        "{lower}\n\nWhich letters should be capitals? Write the sentence properly.",
        "Restore upper-case letters where they belong.\n{lower}",
        "{lower}\nPlease write this with proper capital letters.",
        "This text is all lower case:\n{lower}\n\nCapitalize it correctly.",
        "Correct the capitalization.\n\n{lower}",
        "Lower-case sentence: {lower}\nProperly cased:",
        "Capitalize where needed: {lower}",
    ),
    (turned("{answer}\n\nWrite the sentence above in lower case only.", "{lower}"),),
)

WORD_SEGMENT_TEMPLATES = arrange(
    "word_segment",
    (
        "{no_space}\n\nSplit the text above into words.",
        "Insert the missing spaces: {no_space}",
        "{no_space}\n\nThe spaces are gone. Put them back.",
        "Separate the words: {no_space}",
        "Add spaces between the words of this text.\n{no_space}",
        "This sentence has no spaces:\n{no_space}\n\nWrite it with spaces.",
        "Segment into words: {no_space}",
        "Text without spaces: {no_space}\nText with spaces:",
    ),
    (
        turned("{answer}\n\nWrite the sentence above without any spaces.", "{no_space}"),
        turned("Delete every space from this sentence: {answer}", "{no_space}"),
    ),
)


def _fix_punct_fields(ex):
    # FLAN removes every character that is neither a word character nor whitespace.
    return {"unpunctuated": tf.strings.regex_replace(ex["en"], r"[^\w\s]", ""), "answer": ex["en"]}


def _true_case_fields(ex):
    return {"lower": tf.strings.lower(ex["en"]), "answer": ex["en"]}


def _word_segment_fields(ex):
    return {"no_space": tf.strings.regex_replace(ex["en"], " ", ""), "answer": ex["en"]}


def _text_formatting(name, fields_fn, fields, templates, description, keep=None) -> TaskSpec:
    return TaskSpec(
        name=name,
        cluster="misc",
        source=TfdsSource("para_crawl/enda:1.2.0"),
        fields_fn=fields_fn,
        fields=fields,
        templates=templates,
        metrics=common.metric("edit_distance"),
        splits=splits(name),
        filter_fn=keep,
        primary_metric="edit_distance",
        description=description,
    )


def _changes(fn):
    """Keeps the sentences that the formatting change alters (FLAN's filter)."""

    def keep(ex):
        out = fn(ex)
        (key,) = [k for k in out if k != "answer"]
        return tf.not_equal(out[key], out["answer"])

    return keep


SPECS = (
    TaskSpec(
        name="coqa",
        cluster="misc",
        source=TfdsSource("coqa:1.0.0"),
        fields_fn=_coqa_fields,
        fields=("story", "questions", "answer"),
        templates=COQA_TEMPLATES,
        metrics=common.metric("squad"),  # FLAN: SQuAD EM/F1 (CoQA paper)
        splits=splits("coqa"),
        primary_metric="f1",
        description="CoQA: a story and its conversation of questions, answered in one go",
    ),
    TaskSpec(
        name="quac",
        cluster="misc",
        source=TfdsSource("quac:1.0.0"),
        fields_fn=_quac_fields,
        fields=("title", "section", "background", "context", "question", "answer"),
        templates=QUAC_TEMPLATES,
        metrics=common.metric("trivia_qa"),
        splits=splits("quac"),
        primary_metric="em",
        description="QuAC: information-seeking questions answered with a span (or CANNOTANSWER)",
    ),
    TaskSpec(
        name="trec",
        cluster="misc",
        source=TfdsSource("trec:1.0.0"),
        fields_fn=_trec_fields,
        fields=("text", "options", "answer"),
        templates=TREC_TEMPLATES,
        splits=splits("trec"),
        primary_metric="accuracy",
        description="TREC question classification (6 coarse answer types)",
    ),
    TaskSpec(
        name="cola",
        cluster="misc",
        source=TfdsSource("glue/cola:2.0.0"),
        fields_fn=_cola_fields,
        fields=("sentence", "options", "answer"),
        templates=COLA_TEMPLATES,
        rank_metrics=(metrics_lib.rank_classification_mcc,),
        metrics=common.metric("accuracy", "matthews_corrcoef"),
        splits=splits("cola"),
        primary_metric="accuracy",
        description="CoLA: grammatical acceptability of a sentence",
    ),
    TaskSpec(
        name="wic",
        cluster="misc",
        source=TfdsSource("super_glue/wic:1.0.2"),
        fields_fn=_wic_fields,
        fields=("word", "sentence1", "sentence2", "options", "answer"),
        templates=WIC_TEMPLATES,
        splits=splits("wic"),
        primary_metric="accuracy",
        description="Word-in-Context: is a word used in the same sense in two sentences",
    ),
    TaskSpec(
        name="math_dataset",
        cluster="misc",
        source=TfdsSource("math_dataset/algebra__linear_1d:1.0.0"),
        fields_fn=_math_fields,
        fields=("question", "answer"),
        templates=MATH_TEMPLATES,
        splits=splits("math_dataset"),
        primary_metric="accuracy",
        description="DeepMind Mathematics: solve a linear equation in one variable",
    ),
    _text_formatting(
        "fix_punct",
        _fix_punct_fields,
        ("unpunctuated", "answer"),
        FIX_PUNCT_TEMPLATES,
        "Fix punctuation: restore a sentence's punctuation (ParaCrawl en-da, English side)",
        keep=_changes(_fix_punct_fields),
    ),
    _text_formatting(
        "true_case",
        _true_case_fields,
        ("lower", "answer"),
        TRUE_CASE_TEMPLATES,
        "True case: restore a lower-cased sentence's capitals (ParaCrawl en-da, English side)",
        keep=_changes(_true_case_fields),
    ),
    _text_formatting(
        "word_segment",
        _word_segment_fields,
        ("no_space", "answer"),
        WORD_SEGMENT_TEMPLATES,
        "Word segmentation: restore a sentence's spaces (ParaCrawl en-da, English side)",
    ),
)
