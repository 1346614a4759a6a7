"""FLAN's own templates, read as data from a FLAN checkout, in place of ours.

Our templates are our own words. A user who has a checkout of google-research/FLAN can run the
FLAN 2021 collection with FLAN's exact templates instead (``--templates=flan:PATH/TO/FLAN`` or
the gin macro ``TEMPLATES = "flan:PATH/TO/FLAN"``): ``flan/templates.py`` of that checkout is
parsed with ``ast`` and never imported or executed. Only a module docstring and one assignment
``PATTERNS = {key: [(inputs, targets), ...]}`` of literal dicts, lists, tuples and strings are
accepted; anything else (a call, a name, an f-string, an import, ...) is refused with one line
naming ``file:line``.

Each of our datasets names its FLAN key and how FLAN's field names map onto ours (``DATASETS``):

- ``rename``: FLAN field -> our field of the same content (e.g. ANLI's ``{context}`` is our
  ``{premise}``, AESLC's ``{subject}`` our ``{answer}``); fields not listed keep their name.
- ``extra``: FLAN fields we have no counterpart for, computed from the raw TFDS example the way
  FLAN's preprocessor does (e.g. ``{concepts_newline}``); they join the spec's fields as
  ``flan_<name>``.
- ``constants``: FLAN fields that are the same text for every example (translation's
  ``{lang1}``/``{lang2}``), written into the pattern.
- ``{options_}`` (and ReCoRD's ``{options_str}``) become our options block, which is FLAN's
  format exactly (``OPTIONS:`` then one ``- choice`` line per option), in the same place.

FLAN's template order is kept, and the templates register under the same task names
(``flan2021:<d>:t<i>`` is FLAN's template i). FLAN does not mark turned-around templates; here a
template is original-task when its target is the dataset's answer (``original_targets``) and its
inputs use at least one field; the others (e.g. "Write an email with the subject ...") are
turned around: they train but are not evaluated zero-shot.

A dataset whose FLAN key the file lacks keeps our templates (``FlanTemplates.missing`` names
them); a key this table does not know is refused (a misspelled or foreign file).
"""

from __future__ import annotations

import ast
import dataclasses
import os
import string
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, TypeVar

import tensorflow as tf

from flan_jax.templates import OPTIONS_FIELD, Template, parse_pattern

SETTING_PREFIX = "flan:"
TEMPLATES_FILE = os.path.join("flan", "templates.py")
OPTIONS_FIELDS = ("options_", "options_str")
EXTRA_PREFIX = "flan_"


class FlanTemplatesError(ValueError):
    """A FLAN templates file or setting that cannot be used (one line: what, where, the fix)."""


# ---------------------------------------------------------------------------------------------
# The setting.


def parse_setting(setting: str | None) -> str | None:
    """``None``/``"ours"`` -> None; ``"flan:PATH"`` -> the templates file under PATH.

    PATH is the root of a FLAN checkout (holding ``flan/templates.py``) or that file itself.
    """
    if setting is None or setting in ("", "ours"):
        return None
    if not setting.startswith(SETTING_PREFIX):
        raise FlanTemplatesError(
            f"templates setting {setting!r} is not 'ours' or 'flan:PATH'; "
            "e.g. --templates=flan:/path/to/FLAN (a google-research/FLAN checkout)"
        )
    root = os.path.expanduser(setting[len(SETTING_PREFIX) :])
    path = root if os.path.isfile(root) else os.path.join(root, TEMPLATES_FILE)
    if not os.path.isfile(path):
        raise FlanTemplatesError(
            f"--templates={setting}: no {TEMPLATES_FILE} under {root!r}; give the root of a "
            "google-research/FLAN checkout (or its flan/templates.py)"
        )
    return path


# ---------------------------------------------------------------------------------------------
# Reading the file as data.


@dataclasses.dataclass(frozen=True)
class FlanPattern:
    """One FLAN template as written in the file, with its line for error messages."""

    inputs: str
    targets: str
    line: int


def _refuse(path: str, node: ast.AST, what: str) -> FlanTemplatesError:
    return FlanTemplatesError(
        f"{path}:{getattr(node, 'lineno', 0)}: {what} is not plain data; FLAN's templates "
        "file is read as literal dicts, lists, tuples and strings only (never executed)"
    )


def _literal_str(path: str, node: ast.AST, what: str) -> str:
    """The string of a string-literal node; anything else (a name, a call, an f-string) is
    refused."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    raise _refuse(path, node, f"{what} ({type(node).__name__})")


def read_patterns(path: str) -> dict[str, tuple[FlanPattern, ...]]:
    """``PATTERNS`` of a FLAN templates file, checked to be plain data (never executed)."""
    try:
        with open(path, encoding="utf-8") as f:
            source = f.read()
    except OSError as e:
        raise FlanTemplatesError(f"cannot read FLAN templates {path}: {e.strerror}") from None
    try:
        module = ast.parse(source, filename=path)
    except SyntaxError as e:
        raise FlanTemplatesError(f"{path}:{e.lineno}: not valid Python syntax ({e.msg})") from None
    patterns_node = None
    for i, stmt in enumerate(module.body):
        if i == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # the module docstring
        targets = stmt.targets if isinstance(stmt, ast.Assign) else []
        if len(targets) == 1 and isinstance(targets[0], ast.Name) and targets[0].id == "PATTERNS":
            patterns_node = stmt.value
            continue
        raise _refuse(path, stmt, f"statement {type(stmt).__name__}")
    if patterns_node is None:
        raise FlanTemplatesError(
            f"{path}: no PATTERNS = {{...}} assignment; is this FLAN's flan/templates.py?"
        )
    if not isinstance(patterns_node, ast.Dict):
        raise _refuse(path, patterns_node, f"PATTERNS ({type(patterns_node).__name__})")
    out: dict[str, tuple[FlanPattern, ...]] = {}
    for key_node, value_node in zip(patterns_node.keys, patterns_node.values, strict=True):
        if key_node is None:
            raise _refuse(path, value_node, "a ** expansion")
        key = _literal_str(path, key_node, "a PATTERNS key")
        if not isinstance(value_node, ast.List | ast.Tuple):
            raise _refuse(
                path, value_node, f"the templates of '{key}' ({type(value_node).__name__})"
            )
        items = []
        for item in value_node.elts:
            if not isinstance(item, ast.Tuple | ast.List) or len(item.elts) != 2:
                raise _refuse(path, item, f"a template of '{key}' (want an (inputs, targets) pair)")
            inputs = _literal_str(path, item.elts[0], f"an inputs pattern of '{key}'")
            targets = _literal_str(path, item.elts[1], f"a targets pattern of '{key}'")
            items.append(FlanPattern(inputs, targets, item.lineno))
        if key in out:
            raise FlanTemplatesError(f"{path}:{key_node.lineno}: key '{key}' appears twice")
        out[key] = tuple(items)
    return out


# ---------------------------------------------------------------------------------------------
# The field mapping: our dataset -> FLAN key and field names.

RawFn = Callable[[Mapping[str, tf.Tensor]], tf.Tensor]


@dataclasses.dataclass(frozen=True)
class FlanFields:
    """How one of our datasets reads FLAN's templates of ``key``."""

    key: str
    rename: Mapping[str, str] = dataclasses.field(default_factory=dict)
    extra: Mapping[str, RawFn] = dataclasses.field(default_factory=dict)
    constants: Mapping[str, str] = dataclasses.field(default_factory=dict)
    original_targets: tuple[str, ...] = ("{answer}",)


def _join(key: str, separator: str, limit: int | None = None) -> RawFn:
    def fn(ex):
        items = ex[key]["value"] if isinstance(ex[key], Mapping) else ex[key]
        items = tf.reshape(items, [-1])
        if limit is not None:
            items = items[:limit]
        return tf.strings.reduce_join(items, separator=separator)

    return fn


def _numbered(key: str, limit: int) -> RawFn:
    """``1. a\\n2. b`` over the first ``limit`` items (FLAN's enumerate_items)."""

    def fn(ex):
        items = ex[key]["value"] if isinstance(ex[key], Mapping) else ex[key]
        items = tf.reshape(items, [-1])[:limit]
        numbers = tf.strings.as_string(tf.range(1, tf.size(items) + 1))
        return tf.strings.reduce_join(
            tf.strings.join([numbers, items], separator=". "), separator="\n"
        )

    return fn


def _replace(key: str, *pairs: tuple[str, str]) -> RawFn:
    def fn(ex):
        text = ex[key]
        for pattern, rewrite in pairs:
            text = tf.strings.regex_replace(text, pattern, rewrite)
        return text

    return fn


def _web_nlg_input(ex: Mapping[str, tf.Tensor]) -> tf.Tensor:
    text = tf.strings.reduce_join(ex["input"], separator="; ")
    return tf.strings.regex_replace(tf.strings.regex_replace(text, "_", " "), r" \| ", ", ")


def _before_blank(ex: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """Winogrande's sentence up to the blank (FLAN's ``context``)."""
    return tf.strings.split(ex["sentence"], "_")[0]


_SUMMARY = {"summary": "answer"}
_STRUCT_TARGET = {"target": "answer"}


def _translation(key: str, language: str) -> FlanFields:
    # FLAN's sent1 is English, sent2 the other language; both directions are original tasks.
    return FlanFields(
        key,
        rename={"sent1": "answer", "sent2": "source"},
        constants={"lang1": "English", "lang2": language},
        original_targets=("{answer}", "{source}"),
    )


DATASETS: Mapping[str, FlanFields] = {
    # NLI
    **{f"anli_r{r}": FlanFields("anli", rename={"context": "premise"}) for r in (1, 2, 3)},
    "cb": FlanFields("cb"),
    "mnli_matched": FlanFields("mnli"),
    "mnli_mismatched": FlanFields("mnli"),
    "qnli": FlanFields("qnli"),
    "rte": FlanFields("rte"),
    "snli": FlanFields("snli"),
    "wnli": FlanFields("wnli", rename={"sentence1": "premise", "sentence2": "hypothesis"}),
    # Commonsense
    "copa": FlanFields("copa"),
    "hellaswag": FlanFields("hellaswag"),
    "piqa": FlanFields("piqa"),
    "story_cloze": FlanFields("story_cloze"),
    # Sentiment
    "imdb_reviews": FlanFields("imdb_reviews"),
    "sentiment140": FlanFields("sentiment140"),
    "sst2": FlanFields("sst2", rename={"sentence": "text"}),
    "yelp_polarity_reviews": FlanFields("yelp_polarity_reviews"),
    # Paraphrase
    "mrpc": FlanFields("glue_mrpc"),
    "qqp": FlanFields("glue_qqp", rename={"question1": "sentence1", "question2": "sentence2"}),
    "paws_wiki": FlanFields("paws_wiki"),
    "stsb": FlanFields("stsb", rename={"answer_str": "answer"}),
    # Closed-book QA
    "arc_easy": FlanFields("arc"),
    "arc_challenge": FlanFields("arc"),
    "natural_questions": FlanFields("natural_questions"),
    "trivia_qa": FlanFields("trivia_qa"),
    # Struct-to-text
    "common_gen": FlanFields(
        "common_gen",
        rename={"concepts": "data", **_STRUCT_TARGET},
        extra={"concepts_newline": _join("concepts", "\n")},
    ),
    "dart": FlanFields(
        "dart",
        rename=_STRUCT_TARGET,
        extra={
            "tripleset": lambda ex: tf.strings.regex_replace(
                tf.strings.reduce_join(ex["tripleset"], separator="; "), r"\[(.*?)\]", ""
            ),
            "tripleset_newline": _join("tripleset", "\n"),
        },
    ),
    "e2e_nlg": FlanFields(
        "e2e_nlg",
        rename=_STRUCT_TARGET,
        extra={
            "meaning_representation": _replace(
                "meaning_representation", (r"\[", " = "), (r"\]", "")
            )
        },
    ),
    "web_nlg_en": FlanFields(
        "web_nlg_en", rename=_STRUCT_TARGET, extra={"input_string": _web_nlg_input}
    ),
    # Translation
    "para_crawl_en_es": _translation("para_crawl", "Spanish"),
    "wmt14_fr_en": _translation("wmt14_enfr", "French"),
    "wmt16_cs_en": _translation("wmt16_translate", "Czech"),
    "wmt16_de_en": _translation("wmt16_translate", "German"),
    "wmt16_fi_en": _translation("wmt16_translate", "Finnish"),
    "wmt16_ro_en": _translation("wmt16_translate", "Romanian"),
    "wmt16_ru_en": _translation("wmt16_translate", "Russian"),
    "wmt16_tr_en": _translation("wmt16_translate", "Turkish"),
    # Reading comprehension
    "bool_q": FlanFields("bool_q", rename={"text": "passage"}),
    "drop": FlanFields("drop"),
    "multirc": FlanFields("multirc"),
    "openbookqa": FlanFields("openbookqa"),
    "squad_v1": FlanFields("squad_v1"),
    "squad_v2": FlanFields("squad_v2"),
    # Reading comprehension with commonsense
    "cosmos_qa": FlanFields("cosmos_qa"),
    "record": FlanFields("record"),
    # Coreference
    "definite_pronoun_resolution": FlanFields("definite_pronoun_resolution"),
    "winogrande": FlanFields("winogrande", extra={"context": _before_blank}),
    "wsc": FlanFields("wsc", rename={"context": "text", "text1": "noun", "text2": "pronoun"}),
    "wsc273": FlanFields("wsc273"),
    # Misc.
    "coqa": FlanFields(
        "coqa",
        rename={"text": "story", "numbered_questions": "questions", "numbered_answers": "answer"},
    ),
    "quac": FlanFields("quac"),
    "trec": FlanFields("trec"),
    "cola": FlanFields("cola"),
    "wic": FlanFields("wic"),
    "math_dataset": FlanFields("math_dataset"),
    "fix_punct": FlanFields("fix_punct", rename={"no_punct": "unpunctuated"}),
    "true_case": FlanFields("true_case"),
    "word_segment": FlanFields("word_segment"),
    # Summarization
    "aeslc": FlanFields("aeslc", rename={"body": "text", "subject": "answer"}),
    "ag_news_subset": FlanFields("ag_news_subset"),
    "cnn_dailymail": FlanFields("cnn_dailymail", rename={"highlights": "answer"}),
    "gigaword": FlanFields("gigaword", rename=_SUMMARY),
    "multi_news": FlanFields("multi_news", rename=_SUMMARY),
    "newsroom": FlanFields("newsroom", rename=_SUMMARY, extra={"title": lambda ex: ex["title"]}),
    "opinion_abstracts_idebate": FlanFields(
        "opinion_abstracts_idebate",
        rename={"claim": "answer"},
        extra={
            "debate_name": lambda ex: ex["_debate_name"],
            "argument_sentences": _numbered("_argument_sentences", 10),
        },
    ),
    "opinion_abstracts_rotten_tomatoes": FlanFields(
        "opinion_abstracts_rotten_tomatoes",
        rename={"critic_consensus": "answer"},
        extra={
            "movie": _replace("_movie_name", ("_", " ")),
            "first_review": lambda ex: tf.reshape(ex["_critics"]["value"], [-1])[0],
            "numbered_reviews": _numbered("_critics", 10),
        },
    ),
    "samsum": FlanFields("samsum", rename={"dialogue": "text", **_SUMMARY}),
    "wiki_lingua_english_en": FlanFields(
        "wiki_lingua_english_en", rename={"source": "text", "target": "answer"}
    ),
    "xsum": FlanFields("xsum", rename=_SUMMARY),
}

KNOWN_KEYS = frozenset(f.key for f in DATASETS.values())


# ---------------------------------------------------------------------------------------------
# Turning FLAN patterns into our templates.


class _SpecLike(Protocol):
    """What this module needs of a ``registry.TaskSpec`` (typed structurally, like
    ``promptsource``, so this module sits below the registry)."""

    name: str
    fields_fn: Callable[..., Mapping[str, tf.Tensor]]
    fields: tuple[str, ...]
    templates: tuple[Template, ...]


SpecT = TypeVar("SpecT", bound=_SpecLike)


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _map_pattern(
    pattern: str, where: str, dataset: str, mapping: FlanFields, fields: Sequence[str]
) -> tuple[str, bool]:
    """FLAN pattern -> our pattern (fields renamed); also whether it shows the options."""
    try:
        pieces = list(string.Formatter().parse(pattern))
    except ValueError as e:
        raise FlanTemplatesError(f"{where}: malformed pattern {pattern!r} ({e})") from None
    out, shows_options = [], False
    for literal, field, spec, conversion in pieces:
        out.append(_escape(literal))
        if field is None:
            continue
        if spec or conversion or not field.isidentifier():
            raise FlanTemplatesError(f"{where}: field {{{field}}} is not a plain {{name}} field")
        if field in mapping.constants:
            out.append(_escape(mapping.constants[field]))
            continue
        if field in OPTIONS_FIELDS:
            ours, shows_options = OPTIONS_FIELD, True
        elif field in mapping.extra:
            ours = EXTRA_PREFIX + field
        else:
            ours = mapping.rename.get(field, field)
            if ours not in fields or ours == OPTIONS_FIELD:
                raise FlanTemplatesError(
                    f"{where}: FLAN field {{{field}}} of '{mapping.key}' has no counterpart in "
                    f"dataset '{dataset}' (its fields: {', '.join(fields)}); map it in "
                    "flan_jax/flan_templates.py DATASETS"
                )
        out.append("{" + ours + "}")
    return "".join(out), shows_options


def to_templates(
    dataset: str,
    mapping: FlanFields,
    patterns: Sequence[FlanPattern],
    fields: Sequence[str],
    path: str,
) -> tuple[Template, ...]:
    """FLAN's patterns of one dataset as our templates, in FLAN's order."""
    available = (*fields, *(EXTRA_PREFIX + k for k in mapping.extra))
    out = []
    for p in patterns:
        where = f"{path}:{p.line}"
        inputs, options = _map_pattern(p.inputs, where, dataset, mapping, available)
        targets, in_targets = _map_pattern(p.targets, where, dataset, mapping, available)
        if in_targets:
            raise FlanTemplatesError(f"{where}: the targets pattern may not show the options")
        original = targets in mapping.original_targets and any(
            f for _, f in parse_pattern(inputs) if f and f != OPTIONS_FIELD
        )
        out.append(Template(inputs, targets, options=options, turned_around=not original))
    return tuple(out)


def _with_extra(fields_fn: Callable, extra: Mapping[str, RawFn]) -> Callable:
    def fn(ex):
        out = dict(fields_fn(ex))
        for name, compute in extra.items():
            out[EXTRA_PREFIX + name] = compute(ex)
        return out

    return fn


@dataclasses.dataclass(frozen=True)
class FlanTemplates:
    """Specs with FLAN's templates, and the datasets that kept ours (key not in the file)."""

    specs: tuple
    replaced: tuple[str, ...]
    missing: tuple[str, ...]


def apply(specs: Sequence[SpecT], path: str) -> FlanTemplates:
    """Replaces each spec's templates with FLAN's (read from ``path``) where the file has them."""
    patterns = read_patterns(path)
    unknown = [k for k in patterns if k not in KNOWN_KEYS]
    if unknown:
        line = _key_line(path, unknown[0])
        raise FlanTemplatesError(
            f"{path}:{line}: unknown dataset key '{unknown[0]}'; known FLAN keys: "
            f"{', '.join(sorted(KNOWN_KEYS))}"
        )
    out, replaced, missing = [], [], []
    for spec in specs:
        mapping = DATASETS.get(spec.name)
        if mapping is None or mapping.key not in patterns:
            out.append(spec)
            missing.append(spec.name)
            continue
        templates = to_templates(spec.name, mapping, patterns[mapping.key], spec.fields, path)
        extra_fields = tuple(EXTRA_PREFIX + k for k in mapping.extra)
        new = dataclasses.replace(
            spec,
            templates=templates,
            fields=(*spec.fields, *extra_fields),
            fields_fn=_with_extra(spec.fields_fn, mapping.extra)
            if mapping.extra
            else spec.fields_fn,
        )
        out.append(new)
        replaced.append(spec.name)
    return FlanTemplates(tuple(out), tuple(replaced), tuple(missing))


def _key_line(path: str, key: str) -> int:
    with open(path, encoding="utf-8") as f:
        module = ast.parse(f.read())
    for stmt in module.body:
        if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Dict):
            for k in stmt.value.keys:
                if isinstance(k, ast.Constant) and k.value == key:
                    return k.lineno
    return 0
