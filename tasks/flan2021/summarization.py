"""Summarization cluster: AESLC, AG News, CNN-DM, Gigaword, Multi-News, Newsroom, Opinion
Abstracts (iDebate, RottenTomatoes), SAMSum, WikiLingua (en), XSum.

Newsroom, SAMSum and XSum need files downloaded by hand (``TfdsSource.manual_download``).
"""

from __future__ import annotations

from flan_jax.registry import TaskSpec
from flan_jax.sources import TfdsSource
from flan_jax.templates import Template

from . import common

NEWSROOM_MANUAL = (
    "register at https://summari.es/download/, download train.jsonl, dev.jsonl and test.jsonl, "
    "put them in <data_dir>/downloads/manual/ and run `tfds build newsroom --data_dir=<data_dir>`"
)
SAMSUM_MANUAL = (
    "download https://arxiv.org/src/1911.12237v2/anc/corpus.7z, extract train.json, val.json "
    "and test.json into <data_dir>/downloads/manual/ and run "
    "`tfds build samsum --data_dir=<data_dir>`"
)
XSUM_MANUAL = (
    "build xsum-extracts-from-downloads.tar.gz with the scripts of "
    "https://github.com/EdinburghNLP/XSum (XSum-Dataset/README.md), put it in "
    "<data_dir>/downloads/manual/ and run `tfds build xsum --data_dir=<data_dir>`"
)

FIELDS = ("text", "answer")


def _templates(kind: str, output: str = "summary") -> tuple[Template, ...]:
    """Ten templates summarizing a ``kind`` (article, email, ...) into an ``output``."""
    return (
        Template(f"Write a {output} of this {kind}:\n\n{{text}}"),
        Template(f"{{text}}\n\nWhat is a good {output} of the {kind} above?"),
        Template(f"Summarize the following {kind}.\n\n{{text}}"),
        Template(f"{kind.capitalize()}: {{text}}\n\n{output.capitalize()}:"),
        Template(f"{{text}}\n\nBriefly, what is this {kind} about?"),
        Template(f"Condense the {kind} below into a {output}.\n{{text}}"),
        Template(f"Here is a {kind}:\n{{text}}\n\nWrite its {output}."),
        Template(f"Give the gist of this {kind} in a few words.\n\n{{text}}"),
        Template(
            f"Write a {kind} whose {output} is: {{answer}}", targets="{text}", turned_around=True
        ),
        Template(
            f"{output.capitalize()}: {{answer}}\n\nWrite the full {kind} it summarizes.",
            targets="{text}",
            turned_around=True,
        ),
    )


def _fields(text: str, summary: str):
    def fn(ex):
        return {"text": common.strip(ex[text]), "answer": common.strip(ex[summary])}

    return fn


def _opinions_fields(items: str, summary: str):
    def fn(ex):
        return {
            "text": common.join(ex[items]["value"], " "),
            "answer": common.strip(ex[summary]),
        }

    return fn


AG_NEWS_TOPICS = ("World", "Sports", "Business", "Science/Tech")

AG_NEWS_TEMPLATES = (
    Template("{title}\n\n{text}\n\nWhat is this news article about?", options=True),
    Template("Which topic is this article about?\n\n{text}", options=True),
    Template(
        "Headline: {title}\nStory: {text}\n\nChoose the section this belongs in.", options=True
    ),
    Template("Classify the news story into a topic.\n\n{title}. {text}\n\n{options}", options=True),
    Template("{text}\n\nWhich newspaper section would print this?", options=True),
    Template("Read the article and pick its category.\n{title}\n{text}", options=True),
    Template('What is the subject area of this headline: "{title}"?', options=True),
    Template("Topic of the following text?\n\n{text}", options=True),
    Template(
        "Write a short news item about {answer}.", targets="{title}. {text}", turned_around=True
    ),
    Template(
        "Write a headline for this {answer} story:\n\n{text}", targets="{title}", turned_around=True
    ),
)


def _ag_news_fields(ex):
    opts, answer = common.pick(AG_NEWS_TOPICS, ex["label"])
    return {
        "title": common.strip(ex["title"]),
        "text": common.strip(ex["description"]),
        "options": opts,
        "answer": answer,
    }


ROUGE = common.metric("rouge")
OPINION_SPLITS = {"train": "train[:-400]", "validation": "train[-400:-200]", "test": "train[-200:]"}


def _spec(name, builder, fields_fn, templates, splits, description, manual=None) -> TaskSpec:
    return TaskSpec(
        name=name,
        cluster="summarization",
        source=TfdsSource(builder, manual_download=manual),
        fields_fn=fields_fn,
        fields=FIELDS,
        templates=templates,
        metrics=ROUGE,
        splits=splits,
        description=description,
    )


SPECS = (
    _spec(
        "aeslc",
        "aeslc:1.0.0",
        _fields("email_body", "subject_line"),
        _templates("email", "subject line"),
        common.labelled(),
        "AESLC: subject lines of Enron emails",
    ),
    TaskSpec(
        name="ag_news_subset",
        cluster="summarization",
        source=TfdsSource("ag_news_subset:1.0.0"),
        fields_fn=_ag_news_fields,
        fields=("title", "text", "options", "answer"),
        templates=AG_NEWS_TEMPLATES,
        splits=common.hidden(large=True, test="test"),
        description="AG News: the topic of a news article (World, Sports, Business, Sci/Tech)",
    ),
    _spec(
        "cnn_dailymail",
        "cnn_dailymail:3.4.0",
        _fields("article", "highlights"),
        _templates("news article"),
        common.labelled(),
        "CNN / Daily Mail news articles and their highlights",
    ),
    _spec(
        "gigaword",
        "gigaword:1.2.0",
        _fields("document", "summary"),
        _templates("sentence", "headline"),
        common.labelled(),
        "Gigaword: the headline of a news article's first sentence",
    ),
    _spec(
        "multi_news",
        "multi_news:2.1.0",
        _fields("document", "summary"),
        _templates("set of news articles"),
        common.labelled(),
        "Multi-News: one summary of several articles on an event",
    ),
    _spec(
        "newsroom",
        "newsroom:1.0.0",
        _fields("text", "summary"),
        _templates("article"),
        common.labelled(),
        "Newsroom: summaries of articles from 38 publishers",
        manual=NEWSROOM_MANUAL,
    ),
    _spec(
        "opinion_abstracts_idebate",
        "opinion_abstracts/idebate:1.0.0",
        _opinions_fields("_argument_sentences", "_claim"),
        _templates("argument", "one-sentence claim"),
        OPINION_SPLITS,
        "Opinion Abstracts (iDebate): the claim an argument makes",
    ),
    _spec(
        "opinion_abstracts_rotten_tomatoes",
        "opinion_abstracts/rotten_tomatoes:1.0.0",
        _opinions_fields("_critics", "_critic_consensus"),
        _templates("set of movie reviews", "critics' consensus"),
        OPINION_SPLITS,
        "Opinion Abstracts (Rotten Tomatoes): critics' consensus of a film's reviews",
    ),
    _spec(
        "samsum",
        "samsum:1.0.0",
        _fields("dialogue", "summary"),
        _templates("dialogue"),
        common.labelled(),
        "SAMSum: summaries of messenger-style dialogues",
        manual=SAMSUM_MANUAL,
    ),
    _spec(
        "wiki_lingua_english_en",
        "gem/wiki_lingua_english_en:1.1.0",
        _fields("source", "target"),
        _templates("how-to article"),
        common.labelled(),
        "WikiLingua (English): summaries of WikiHow how-to guides",
    ),
    _spec(
        "xsum",
        "xsum:1.1.0",
        _fields("document", "summary"),
        _templates("BBC article", "one-sentence summary"),
        common.labelled(),
        "XSum: one-sentence summaries of BBC articles",
        manual=XSUM_MANUAL,
    ),
)
