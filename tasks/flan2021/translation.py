"""Translation cluster: ParaCrawl en-es, WMT14 en-fr, WMT16 cs/de/fi/ro/ru/tr-en.

Each dataset is one task that translates in both directions, as FLAN's templates do: in FLAN's
order, some original templates translate English into the other language (target
``{source}``), the others into English (target ``{answer}``); both kinds are evaluated (BLEU per
template). The two turned-around templates write a sentence in one language, or name the
language of a sentence.
"""

from __future__ import annotations

from flan_jax.registry import TaskSpec
from flan_jax.sources import TfdsSource
from flan_jax.templates import Template

from . import common
from .common import turned
from .flan_reference import DIRECTIONS, splits

LANGUAGES = {
    "cs": "Czech",
    "de": "German",
    "es": "Spanish",
    "fi": "Finnish",
    "fr": "French",
    "ro": "Romanian",
    "ru": "Russian",
    "tr": "Turkish",
}
FIELDS = ("source", "answer")  # the non-English sentence, the English sentence

# Our wording per direction; ``flan_reference.DIRECTIONS`` orders them as FLAN does.
INTO_OTHER = (
    "Translate this English text into {lang}:\n\n{{answer}}",
    'How would you say "{{answer}}" in {lang}?',
    "{{answer}}\n\nGive the {lang} version of the sentence above.",
    "English: {{answer}}\n{lang}:",
    "Render this sentence in {lang}.\n\n{{answer}}",
)
INTO_ENGLISH = (
    "Translate this {lang} text into English:\n\n{{source}}",
    "{{source}}\n\nWhat does the {lang} sentence above say in English?",
    "{lang}: {{source}}\nEnglish:",
    'Put "{{source}}" into English.',
)


def _templates(lang: str, directions: str, wmt: bool) -> tuple[Template, ...]:
    """Eight translation templates in FLAN's direction order, then two turned around."""
    into_other, into_english = iter(INTO_OTHER), iter(INTO_ENGLISH)
    originals = []
    for d in directions:
        if d == "X":
            originals.append(Template(next(into_other).format(lang=lang), targets="{source}"))
        else:
            originals.append(Template(next(into_english).format(lang=lang), targets="{answer}"))
    if wmt:
        extra = (
            turned("Write a sentence in a language other than English.", "{source}"),
            turned("{source}\n\nWhich language is this sentence in?", lang),
        )
    else:
        extra = (
            turned("Write a sentence in English.", "{answer}"),
            turned(f"Write a sentence in {lang}.", "{source}"),
        )
    return tuple(originals) + extra


def _fields(code: str):
    def fn(ex):
        return {"source": ex[code], "answer": ex["en"]}

    return fn


BLEU = common.metric("bleu")


def _spec(name: str, builder: str, code: str, description: str) -> TaskSpec:
    wmt = not name.startswith("para_crawl")
    return TaskSpec(
        name=name,
        cluster="translation",
        source=TfdsSource(builder),
        fields_fn=_fields(code),
        fields=FIELDS,
        templates=_templates(LANGUAGES[code], DIRECTIONS["wmt" if wmt else "para_crawl"], wmt),
        metrics=BLEU,
        splits=splits(name),
        primary_metric="bleu",
        description=description,
    )


def _wmt16(code: str) -> TaskSpec:
    return _spec(
        f"wmt16_{code}_en",
        f"wmt16_translate/{code}-en:1.0.0",
        code,
        f"WMT16 {LANGUAGES[code]}-English news translation (both directions)",
    )


SPECS = (
    # ParaCrawl has a train split only: FLAN carves dev and test from its end.
    _spec(
        "para_crawl_en_es",
        "para_crawl/enes:1.2.0",
        "es",
        "ParaCrawl English-Spanish web-crawled sentence pairs (both directions)",
    ),
    _spec(
        "wmt14_fr_en",
        "wmt14_translate/fr-en:1.0.0",
        "fr",
        "WMT14 French-English news translation (both directions)",
    ),
    *(_wmt16(code) for code in ("cs", "de", "fi", "ro", "ru", "tr")),
)
