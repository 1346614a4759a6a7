"""Summarization cluster: AESLC, AG News, CNN-DM, Gigaword, Multi-News, Newsroom, Opinion
Abstracts (iDebate, RottenTomatoes), SAMSum, WikiLingua (en), XSum.

Newsroom, SAMSum and XSum need files downloaded by hand (``TfdsSource.manual_download``).
"""

from __future__ import annotations

import tensorflow as tf

from flan_jax.registry import TaskSpec
from flan_jax.sources import TfdsSource

from . import common, flan_reference
from .common import arrange, turned
from .flan_reference import splits

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


def _originals(kind: str, output: str) -> list[str]:
    """Original-task inputs summarizing a ``kind`` (article, email, ...) into an ``output``."""
    return [
        f"Write a {output} of this {kind}:\n\n{{text}}",
        f"{{text}}\n\nWhat is a good {output} of the {kind} above?",
        f"Summarize the following {kind}.\n\n{{text}}",
        f"{kind.capitalize()}: {{text}}\n\n{output.capitalize()}:",
        f"{{text}}\n\nBriefly, what is this {kind} about?",
        f"Condense the {kind} below into a {output}.\n{{text}}",
        f"Here is a {kind}:\n{{text}}\n\nWrite its {output}.",
        f"Give the gist of this {kind} in a few words.\n\n{{text}}",
    ]


def _expand(kind: str, output: str) -> list:
    """Turned around: write the ``kind`` from its ``output``."""
    return [
        turned(f"Write a {kind} whose {output} is: {{answer}}", "{text}"),
        turned(
            f"{output.capitalize()}: {{answer}}\n\nWrite the full {kind} it summarizes.", "{text}"
        ),
        turned(f"Expand this {output} into a complete {kind}.\n\n{{answer}}", "{text}"),
    ]


def _templates(dataset: str, kind: str, output: str = "summary", turned_ones=None):
    """Our templates for ``dataset`` in FLAN's structure (its counts of each kind)."""
    structure = flan_reference.FLAN[dataset].structure
    n_orig = structure.count("N") + structure.count("O")
    side = list(turned_ones) if turned_ones is not None else _expand(kind, output)
    return arrange(dataset, _originals(kind, output)[:n_orig], side[: structure.count("T")])


def _fields(text: str, summary: str, clean=None):
    def fn(ex):
        body = ex[text] if clean is None else clean(ex[text])
        return {"text": body, "answer": ex[summary]}

    return fn


def _numbered(items: tf.Tensor, limit: int = 10) -> tf.Tensor:
    """``1. a\n2. b`` over the first ``limit`` items (FLAN's list of reviews or arguments)."""
    items = tf.reshape(items, [-1])[:limit]
    numbers = tf.strings.as_string(tf.range(1, tf.size(items) + 1))
    return tf.strings.reduce_join(tf.strings.join([numbers, items], separator=". "), separator="\n")


def _aeslc_fields(ex):
    return {
        "text": tf.strings.regex_replace(ex["email_body"], "\n", " "),
        "answer": tf.strings.regex_replace(ex["subject_line"], "\n", ""),
    }


def _cnn_text(article):
    # FLAN's preprocessing, reproduced as it behaves: at each separator it keeps the text
    # *before* the first occurrence (meant to drop the byline, it keeps it instead), so
    # articles holding a separator are cut to their opening words ("(CNN" for "(CNN) -- ...").
    for sep in ("2013 . ", "2014 . ", "2012 . ", ") -- "):
        article = tf.strings.split(article, sep)[0]
    return article


def _samsum_text(dialogue):
    dialogue = tf.strings.regex_replace(dialogue, "\r\n", "\n")
    return tf.strings.regex_replace(dialogue, "<.*>", " ")


def _gigaword_keep(ex):
    text = tf.strings.join([ex["document"], ex["summary"]])
    no_unk = tf.logical_not(tf.strings.regex_full_match(text, ".*UNK.*"))
    return tf.logical_and(no_unk, tf.logical_not(tf.strings.regex_full_match(text, ".*#.*")))


def _idebate_fields(ex):
    return {
        "text": _numbered(ex["_argument_sentences"]["value"]),
        "answer": ex["_claim"],
        "topic": ex["_debate_name"],
    }


def _rotten_tomatoes_fields(ex):
    reviews = ex["_critics"]["value"]
    return {
        "text": _numbered(reviews),
        "answer": ex["_critic_consensus"],
        "movie": tf.strings.regex_replace(ex["_movie_name"], "_", " "),
        "first_review": common.first(reviews),
    }


def _newsroom_fields(ex):
    return {"text": ex["text"], "answer": ex["summary"], "title": ex["title"]}


AG_NEWS_TOPICS = ("World", "Sports", "Business", "Science/Tech")

AG_NEWS_TEMPLATES = arrange(
    "ag_news_subset",
    (
        "{title}\n\n{text}\n\nWhat is this news article about?",
        "Which topic is this article about?\n\n{text}",
        "Headline: {title}\nStory: {text}\n\nChoose the section this belongs in.",
        "Classify the news story into a topic.\n\n{title}. {text}\n\n{options}",
        "{text}\n\nWhich newspaper section would print this?",
        "Read the article and pick its category.\n{title}\n{text}",
        'What is the subject area of this headline: "{title}"?',
        "Topic of the following text?\n\n{text}",
    ),
    (
        turned("Write a headline for this news story:\n\n{text}", "{title}"),
        turned("{text}\n\nWhat would be a fitting title?", "{title}"),
    ),
)


def _ag_news_fields(ex):
    opts, answer = common.pick(AG_NEWS_TOPICS, ex["label"])
    return {
        "title": ex["title"],
        "text": ex["description"],
        "options": opts,
        "answer": answer,
    }


ROUGE = common.metric("rouge")


def _spec(name, builder, fields_fn, templates, description, manual=None, fields=FIELDS, keep=None):
    return TaskSpec(
        name=name,
        cluster="summarization",
        source=TfdsSource(builder, manual_download=manual),
        fields_fn=fields_fn,
        fields=fields,
        templates=templates,
        metrics=ROUGE,
        splits=splits(name),
        filter_fn=keep,
        primary_metric="rougeL",
        description=description,
    )


SPECS = (
    _spec(
        "aeslc",
        "aeslc:1.0.0",
        _aeslc_fields,
        _templates(
            "aeslc",
            "email",
            "subject line",
            [
                turned("Write an email with this subject line: {answer}", "{text}"),
                turned('Compose an email titled "{answer}".', "{text}"),
            ],
        ),
        "AESLC: subject lines of Enron emails",
    ),
    TaskSpec(
        name="ag_news_subset",
        cluster="summarization",
        source=TfdsSource("ag_news_subset:1.0.0"),
        fields_fn=_ag_news_fields,
        fields=("title", "text", "options", "answer"),
        templates=AG_NEWS_TEMPLATES,
        splits=splits("ag_news_subset"),
        primary_metric="accuracy",
        description="AG News: the topic of a news article (World, Sports, Business, Sci/Tech)",
    ),
    _spec(
        "cnn_dailymail",
        "cnn_dailymail:3.4.0",
        _fields("article", "highlights", clean=_cnn_text),
        _templates("cnn_dailymail", "news article", "list of highlights"),
        "CNN / Daily Mail news articles and their highlights",
    ),
    _spec(
        "gigaword",
        "gigaword:1.2.0",
        _fields("document", "summary"),
        _templates("gigaword", "sentence", "headline"),
        "Gigaword: the headline of a news article's first sentence",
        keep=_gigaword_keep,
    ),
    _spec(
        "multi_news",
        "multi_news:2.1.0",
        _fields("document", "summary"),
        _templates("multi_news", "set of news articles"),
        "Multi-News: one summary of several articles on an event",
    ),
    _spec(
        "newsroom",
        "newsroom:1.0.0",
        _newsroom_fields,
        _templates(
            "newsroom",
            "article",
            turned_ones=[
                turned('Write a news article headlined "{title}".', "{text}"),
                turned("Give this article a headline.\n\n{text}", "{title}"),
                turned("{text}\n\nWhat is a good title for the article above?", "{title}"),
            ],
        ),
        "Newsroom: summaries of articles from 38 publishers",
        manual=NEWSROOM_MANUAL,
        fields=("text", "answer", "title"),
    ),
    _spec(
        "opinion_abstracts_idebate",
        "opinion_abstracts/idebate:1.0.0",
        _idebate_fields,
        _templates(
            "opinion_abstracts_idebate",
            "list of arguments",
            "one-sentence claim",
            [
                turned("Which debate are these points from?\n\n{text}", "{topic}"),
                turned("Name the debate topic these arguments address.\n\n{text}", "{topic}"),
                turned("{answer}\n\nList some points that back this claim.", "{text}"),
                turned("Claim: {answer}\nWhat arguments support it?", "{text}"),
            ],
        ),
        "Opinion Abstracts (iDebate): the claim an argument makes",
        fields=("text", "answer", "topic"),
    ),
    _spec(
        "opinion_abstracts_rotten_tomatoes",
        "opinion_abstracts/rotten_tomatoes:1.0.0",
        _rotten_tomatoes_fields,
        _templates(
            "opinion_abstracts_rotten_tomatoes",
            "list of movie reviews",
            "critics' consensus",
            [
                turned('List some critics\' reviews of the film "{movie}".', "{text}"),
                turned("Critics agreed: {answer}\nWhich reviews led to this verdict?", "{text}"),
                turned("Which film is this review about?\n\n{first_review}", "{movie}"),
            ],
        ),
        "Opinion Abstracts (Rotten Tomatoes): critics' consensus of a film's reviews",
        fields=("text", "answer", "movie", "first_review"),
    ),
    _spec(
        "samsum",
        "samsum:1.0.0",
        _fields("dialogue", "summary", clean=_samsum_text),
        _templates(
            "samsum",
            "dialogue",
            turned_ones=[
                turned("Write a short chat conversation on any topic.", "{text}"),
                turned("Write a dialogue that this summary describes:\n{answer}", "{text}"),
                turned('Compose a chat between friends about this: "{answer}"', "{text}"),
            ],
        ),
        "SAMSum: summaries of messenger-style dialogues",
        manual=SAMSUM_MANUAL,
    ),
    _spec(
        "wiki_lingua_english_en",
        "gem/wiki_lingua_english_en:1.1.0",
        _fields("source", "target"),
        _templates("wiki_lingua_english_en", "how-to article"),
        "WikiLingua (English): summaries of WikiHow how-to guides",
    ),
    _spec(
        "xsum",
        "xsum:1.1.0",
        _fields("document", "summary"),
        _templates("xsum", "BBC article", "one-sentence summary"),
        "XSum: one-sentence summaries of BBC articles",
        manual=XSUM_MANUAL,
    ),
)
