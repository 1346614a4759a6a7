"""Translation cluster: ParaCrawl en-es, WMT14 en-fr, WMT16 cs/de/fi/ro/ru/tr-en.

Each dataset is one task: most templates translate into English, the turned-around ones translate
from English (both directions of the pair, as FLAN mixes them).
"""

from __future__ import annotations

from flan_jax.registry import TaskSpec
from flan_jax.sources import TfdsSource
from flan_jax.templates import Template

from . import common

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
FIELDS = ("source", "answer")


def _templates(lang: str) -> tuple[Template, ...]:
    """Seven into-English templates, three turned around (English into ``lang``)."""
    return (
        Template(f"Translate this {lang} text into English:\n\n{{source}}"),
        Template(f"{{source}}\n\nTranslate the {lang} sentence above to English."),
        Template("How do you say this in English?\n\n{source}"),
        Template(f"{lang}: {{source}}\nEnglish:"),
        Template("Give an English translation of the following.\n{source}"),
        Template(f'Render this {lang} sentence in English: "{{source}}"'),
        Template(f"I need this translated from {lang} to English: {{source}}"),
        Template(f"Translate into {lang}:\n\n{{answer}}", targets="{source}", turned_around=True),
        Template(f"English: {{answer}}\n{lang}:", targets="{source}", turned_around=True),
        Template(
            f'How would you write "{{answer}}" in {lang}?', targets="{source}", turned_around=True
        ),
    )


def _fields(code: str):
    def fn(ex):
        return {"source": ex[code], "answer": ex["en"]}

    return fn


BLEU = common.metric("bleu")


def _spec(name: str, builder: str, code: str, splits, description: str) -> TaskSpec:
    return TaskSpec(
        name=name,
        cluster="translation",
        source=TfdsSource(builder),
        fields_fn=_fields(code),
        fields=FIELDS,
        templates=_templates(LANGUAGES[code]),
        metrics=BLEU,
        splits=splits,
        description=description,
    )


def _wmt16(code: str) -> TaskSpec:
    return _spec(
        f"wmt16_{code}_en",
        f"wmt16_translate/{code}-en:1.0.0",
        code,
        common.labelled(),
        f"WMT16 {LANGUAGES[code]}-English news translation",
    )


SPECS = (
    # ParaCrawl has a train split only: dev and test are carved from its end.
    _spec(
        "para_crawl_en_es",
        "para_crawl/enes:1.2.0",
        "es",
        common.train_only(),
        "ParaCrawl English-Spanish web-crawled sentence pairs",
    ),
    _spec(
        "wmt14_fr_en",
        "wmt14_translate/fr-en:1.0.0",
        "fr",
        common.labelled(),
        "WMT14 French-English news translation",
    ),
    *(_wmt16(code) for code in ("cs", "de", "fi", "ro", "ru", "tr")),
)
