"""The demo collection: offline, procedurally generated, deterministic instruction data.

Four clusters of two datasets each, small enough for a tiny model on a laptop CPU and shaped like
FLAN's: NLI-style entailment over generated facts, sentiment over generated reviews, arithmetic,
and string transformations. Every dataset has six templates: some render the options block, one
asks for the answer without options, one is turned around (asks for the reverse task).

Examples are generated when a split is first read (nothing at import time), from a seed derived
from (dataset, split); test, validation and train never share an example.
"""

from __future__ import annotations

import functools
import random
import zlib
from collections.abc import Callable, Iterator

import seqio
import tensorflow as tf

from flan_jax.registry import Collection, TaskSpec, register_collection
from flan_jax.sources import FunctionSource
from flan_jax.templates import Template

SIZES = {"train": 2000, "validation": 50, "test": 100}

_NAMES = [
    "Ada", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lena",
    "Milo", "Nora", "Omar", "Pia", "Quin", "Rosa", "Sami", "Tess", "Uma", "Vik", "Wren", "Yara",
]  # fmt: skip
_COLORS = ["red", "blue", "green", "yellow", "black", "white", "purple", "orange"]
_THINGS = ["kite", "cup", "book", "hat", "ball", "lamp", "shell", "coin", "pen", "mug"]
_PRODUCTS = ["blender", "backpack", "phone case", "desk chair", "kettle", "headset", "tent"]
_GOOD = ["excellent", "sturdy", "wonderful", "reliable", "great", "lovely", "superb", "handy"]
_BAD = ["terrible", "flimsy", "awful", "useless", "broken", "poor", "disappointing", "cheap"]
_GOOD_MORE = ["I would buy it again.", "It works every day.", "Five stars from me."]
_BAD_MORE = ["I want a refund.", "It stopped working fast.", "Do not buy this."]
_FILMS = ["the thriller", "this comedy", "the sequel", "the documentary", "this drama"]
_FILMS += ["the western", "this musical", "the remake"]
_WHEN = ["last night", "on Sunday", "with friends", "at the festival", "on a flight"]
_GOOD_FILM = ["moving", "clever", "brilliant", "gripping", "charming", "delightful", "fresh"]
_BAD_FILM = ["dull", "clumsy", "boring", "tedious", "messy", "forgettable", "stale"]
_SYLLABLES = ["ka", "lo", "mi", "ren", "tu", "sa", "vo", "pel", "dri", "an", "os", "ber", "fi"]

NLI3 = ["yes", "it is not possible to tell", "no"]
YES_NO = ["yes", "no"]
SENTIMENT = ["negative", "positive"]


# ---------------------------------------------------------------------------------------------
# Generators: each yields (dedup key, raw example) forever from a seeded RNG.


def _fact_nli(rng: random.Random) -> Iterator[tuple[str, dict]]:
    while True:
        name, thing = rng.choice(_NAMES), rng.choice(_THINGS)
        c1, c2, c3 = rng.sample(_COLORS, 3)
        a, b = rng.sample(range(2, 10), 2)
        premise = f"{name} has {a} {c1} {thing}s and {b} {c2} {thing}s."
        label = rng.randrange(3)
        if label == 0:
            hypothesis = f"{name} has {a} {c1} {thing}s."
        elif label == 1:
            hypothesis = f"{name} has a {c3} {thing}."
        else:
            wrong = rng.choice([n for n in range(2, 10) if n not in (a, b)])
            hypothesis = f"{name} has {wrong} {c1} {thing}s."
        yield premise + hypothesis, {"premise": premise, "hypothesis": hypothesis, "label": label}


def _order_nli(rng: random.Random) -> Iterator[tuple[str, dict]]:
    relations = ["taller than", "older than", "faster than", "richer than"]
    while True:
        x, y, z = rng.sample(_NAMES, 3)
        rel = rng.choice(relations)
        premise = f"{x} is {rel} {y}. {y} is {rel} {z}."
        label = rng.randrange(2)
        hypothesis = f"{x} is {rel} {z}." if label == 0 else f"{z} is {rel} {x}."
        yield premise + hypothesis, {"premise": premise, "hypothesis": hypothesis, "label": label}


def _product_reviews(rng: random.Random) -> Iterator[tuple[str, dict]]:
    while True:
        label = rng.randrange(2)
        adjs, more = (_GOOD, _GOOD_MORE) if label else (_BAD, _BAD_MORE)
        a1, a2 = rng.sample(adjs, 2)
        text = f"This {rng.choice(_PRODUCTS)} is {a1} and {a2}. {rng.choice(more)}"
        yield text, {"text": text, "label": label}


def _movie_reviews(rng: random.Random) -> Iterator[tuple[str, dict]]:
    while True:
        label = rng.randrange(2)
        adjs = _GOOD_FILM if label else _BAD_FILM
        a1, a2 = rng.sample(adjs, 2)
        film, when = rng.choice(_FILMS), rng.choice(_WHEN)
        text = f"I watched {film} {when}: the acting was {a1} and the plot {a2}."
        yield text, {"text": text, "label": label}


def _addition(rng: random.Random) -> Iterator[tuple[str, dict]]:
    while True:
        a, b = rng.randrange(100), rng.randrange(100)
        answer = a + b
        distractors = rng.sample([d for d in range(answer - 12, answer + 13) if d != answer], 3)
        options = [str(o) for o in sorted([answer, *distractors])]
        yield f"{a}+{b}", {"a": str(a), "b": str(b), "options": options, "answer": str(answer)}


def _compare(rng: random.Random) -> Iterator[tuple[str, dict]]:
    while True:
        a, b = rng.sample(range(1000), 2)
        yield f"{a}?{b}", {"a": str(a), "b": str(b), "answer": str(max(a, b))}


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(syllables))


def _reverse_word(rng: random.Random) -> Iterator[tuple[str, dict]]:
    while True:
        word = _word(rng, rng.randint(2, 3))
        answer = word[::-1]
        options = {answer}
        while len(options) < 3:
            options.add("".join(rng.sample(word, len(word))))
        options = sorted(options)
        yield word, {"word": word, "options": options, "answer": answer}


def _first_alphabetical(rng: random.Random) -> Iterator[tuple[str, dict]]:
    # Words of equal syllable count, so option length says nothing about the answer (summed
    # log-likelihood scoring favours short options).
    while True:
        words = [_word(rng, 2) for _ in range(3)]
        if len(set(words)) < 3 or len({w[0] for w in words}) < 3:
            continue
        yield " ".join(words), {"words": words, "answer": min(words)}


def _splits(gen: Callable[[random.Random], Iterator[tuple[str, dict]]], name: str) -> dict:
    """Draws test, then validation, then train, skipping keys already drawn (no overlap)."""
    seen: set[str] = set()
    out = {}
    for split in ("test", "validation", "train"):
        rng = random.Random(zlib.crc32(f"{name}/{split}".encode()))
        rows, stream = [], gen(rng)
        for _ in range(100 * SIZES[split]):
            if len(rows) == SIZES[split]:
                break
            key, ex = next(stream)
            if key not in seen:
                seen.add(key)
                rows.append(ex)
        else:  # the generator's space is too small for the requested sizes: a bug, say so
            raise RuntimeError(f"demo dataset {name}: only {len(rows)} distinct {split} examples")
        out[split] = rows
    return out


@functools.cache
def _examples(name: str) -> dict[str, list[dict]]:
    return _splits(_GENERATORS[name], name)


def _dataset_fn(name: str) -> Callable[[str], tf.data.Dataset]:
    def fn(split: str) -> tf.data.Dataset:
        rows = _examples(name)[split]
        columns = {k: [r[k] for r in rows] for k in rows[0]}
        return tf.data.Dataset.from_tensor_slices(columns)

    return fn


_GENERATORS = {
    "fact_nli": _fact_nli,
    "order_nli": _order_nli,
    "product_reviews": _product_reviews,
    "movie_reviews": _movie_reviews,
    "addition": _addition,
    "compare": _compare,
    "reverse_word": _reverse_word,
    "first_alphabetical": _first_alphabetical,
}


def _source(name: str) -> FunctionSource:
    return FunctionSource(_dataset_fn(name), SIZES)


# ---------------------------------------------------------------------------------------------
# Raw example -> template fields.


def _choice_fields(options: list[str]):
    def fn(ex):
        opts = tf.constant(options)
        return {**ex, "options": opts, "answer": tf.gather(opts, ex["label"])}

    return fn


def _review_fields(options: list[str]):
    base = _choice_fields(options)
    return lambda ex: {"review": ex["text"], **base(ex)}


def _compare_fields(ex):
    return {**ex, "options": tf.stack([ex["a"], ex["b"]])}


def _words_fields(ex):
    return {
        "words": tf.strings.reduce_join(ex["words"], separator=", "),
        "options": ex["words"],
        "answer": ex["answer"],
    }


# ---------------------------------------------------------------------------------------------
# Templates (ours). Each list: options templates, one without options, one turned around.

NLI_TEMPLATES = (
    Template(
        "Premise: {premise}\nHypothesis: {hypothesis}\nDoes the premise entail the hypothesis?",
        options=True,
    ),
    Template(
        '{premise}\n\nBased on the text above, can we conclude that "{hypothesis}"?', options=True
    ),
    Template(
        "Read the text and decide whether the claim follows from it.\n\nText: {premise}\n"
        "Claim: {hypothesis}",
        options=True,
    ),
    Template("{premise}\nQuestion: {hypothesis} True or not?\n\n{options}", options=True),
    Template('Does "{premise}" imply "{hypothesis}"? Answer with one of: {choices}.'),
    Template(
        "Premise: {premise}\nRelation: {answer}\nWrite a hypothesis with this relation to the "
        "premise.",
        targets="{hypothesis}",
        turned_around=True,
    ),
)

SENTIMENT_TEMPLATES = (
    Template("{review}\nWhat is the sentiment of this review?", options=True),
    Template("Review: {review}\nIs this review positive or negative?", options=True),
    Template("Classify the sentiment of the following text.\n\n{review}", options=True),
    Template("{review}\n\nHow did the writer feel?", options=True),
    Template("What sentiment does this review express, positive or negative?\n{review}"),
    Template("Write a {answer} review.", targets="{review}", turned_around=True),
)

ADDITION_TEMPLATES = (
    Template("What is {a} plus {b}?", options=True),
    Template("Compute {a} + {b}.", options=True),
    Template("Add {a} and {b}. What do you get?"),
    Template("Solve: {a} + {b} =", options=True),
    Template(
        "If you have {a} marbles and get {b} more, how many marbles do you have?", options=True
    ),
    Template(
        "Write an addition problem whose answer is {answer}.",
        targets="{a} + {b}",
        turned_around=True,
    ),
)

COMPARE_TEMPLATES = (
    Template("Which number is larger: {a} or {b}?", options=True),
    Template("Pick the bigger number.", options=True),
    Template("{a} versus {b}: which is greater?"),
    Template("Of the numbers below, which has the highest value?", options=True),
    Template("Is {a} or {b} the larger number?", options=True),
    Template(
        "Write two different numbers so that {answer} is the larger one.",
        targets="{a} and {b}",
        turned_around=True,
    ),
)

REVERSE_TEMPLATES = (
    Template('Reverse the letters of "{word}".'),
    Template('Which of these is "{word}" spelled backwards?', options=True),
    Template("Spell the word {word} in reverse order.", options=True),
    Template("{word} reversed is?", options=True),
    Template("Write {word} backwards.", options=True),
    Template(
        'Which word gives "{answer}" when its letters are reversed?',
        targets="{word}",
        turned_around=True,
    ),
)

ALPHABETICAL_TEMPLATES = (
    Template("Which word comes first in alphabetical order?", options=True),
    Template("Sort these words alphabetically and give the first one: {words}."),
    Template("Words: {words}\nWhich one would a dictionary list first?", options=True),
    Template("Pick the word that comes first alphabetically.", options=True),
    Template("Here are some words: {words}. Which is first in A-to-Z order?", options=True),
    Template(
        'Give three words where "{answer}" comes first in alphabetical order.',
        targets="{words}",
        turned_around=True,
    ),
)


def _nli_fields(options: list[str]):
    base = _choice_fields(options)
    choices = ", ".join(options)
    return lambda ex: {**base(ex), "choices": tf.constant(choices)}


SPECS = (
    TaskSpec(
        name="fact_nli",
        cluster="nli",
        source=_source("fact_nli"),
        fields_fn=_nli_fields(NLI3),
        fields=("premise", "hypothesis", "options", "answer", "choices"),
        templates=NLI_TEMPLATES,
        description="3-way entailment between counted-object facts",
    ),
    TaskSpec(
        name="order_nli",
        cluster="nli",
        source=_source("order_nli"),
        fields_fn=_nli_fields(YES_NO),
        fields=("premise", "hypothesis", "options", "answer", "choices"),
        templates=NLI_TEMPLATES,
        description="2-way entailment under a transitive relation",
    ),
    TaskSpec(
        name="product_reviews",
        cluster="sentiment",
        source=_source("product_reviews"),
        fields_fn=_review_fields(SENTIMENT),
        fields=("review", "options", "answer"),
        templates=SENTIMENT_TEMPLATES,
        description="polarity of generated product reviews",
    ),
    TaskSpec(
        name="movie_reviews",
        cluster="sentiment",
        source=_source("movie_reviews"),
        fields_fn=_review_fields(SENTIMENT),
        fields=("review", "options", "answer"),
        templates=SENTIMENT_TEMPLATES,
        description="polarity of generated one-line film reviews",
    ),
    TaskSpec(
        name="addition",
        cluster="arithmetic",
        source=_source("addition"),
        fields_fn=dict,
        fields=("a", "b", "options", "answer"),
        templates=ADDITION_TEMPLATES,
        description="sum of two numbers below 100",
    ),
    TaskSpec(
        name="compare",
        cluster="arithmetic",
        source=_source("compare"),
        fields_fn=_compare_fields,
        fields=("a", "b", "options", "answer"),
        templates=COMPARE_TEMPLATES,
        description="the larger of two numbers below 1000",
    ),
    TaskSpec(
        name="reverse_word",
        cluster="strings",
        source=_source("reverse_word"),
        fields_fn=dict,
        fields=("word", "options", "answer"),
        templates=REVERSE_TEMPLATES,
        description="a made-up word spelled backwards",
    ),
    TaskSpec(
        name="first_alphabetical",
        cluster="strings",
        source=_source("first_alphabetical"),
        fields_fn=_words_fields,
        fields=("words", "options", "answer"),
        templates=ALPHABETICAL_TEMPLATES,
        description="the alphabetically first of three made-up words",
    ),
)


def register(vocabulary: seqio.Vocabulary) -> Collection:
    """Registers the demo collection's tasks with ``vocabulary`` (``flan_jax.catalog`` calls it)."""
    return register_collection("demo", SPECS, vocabulary)
