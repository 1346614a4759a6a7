"""Metric functions in seqio's calling convention, computed by well-kept libraries.

seqio picks the metric kind from the argument names: ``(targets, predictions)`` for generated
text, ``(targets, scores)`` for scored rows (rank classification). Values are percentages
(x 100) except edit distance. Generation metrics accept a list of references per target and
keep the best score (BLEU hands sacrebleu all references at once).
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

# sacrebleu, rouge-score (nltk), scikit-learn and scipy load when a metric is first computed:
# every task module imports this file, and listing or registering tasks should not pay for them.


def exact_match(targets: Sequence[Any], predictions: Sequence[Any]) -> dict[str, float]:
    """Percentage of predictions equal to their target (after postprocessing)."""
    import sklearn.metrics

    return {"accuracy": 100.0 * sklearn.metrics.accuracy_score(targets, predictions)}


def rank_choices(
    targets: Sequence[tuple[int, int, bool]], scores: Sequence[float]
) -> tuple[list[int], list[int]]:
    """Per example group: (predicted option index, correct option index).

    ``targets`` are (group id, option index, is_correct) rows as produced by the rank task's
    postprocessor; the prediction is the option with the highest score (ties: lowest index).
    """
    groups: dict[int, list[tuple[int, bool, float]]] = collections.defaultdict(list)
    for (idx, option, correct), score in zip(targets, scores, strict=True):
        groups[idx].append((option, correct, float(score)))
    predicted, gold = [], []
    for idx in sorted(groups):
        rows = sorted(groups[idx])
        best = int(np.argmax([s for _, _, s in rows]))
        predicted.append(rows[best][0])
        gold.append(next((o for o, c, _ in rows if c), -1))
    return predicted, gold


def rank_classification(
    targets: Sequence[tuple[int, int, bool]], scores: Sequence[float]
) -> dict[str, float]:
    """Accuracy of rank classification: argmax of option scores within each example."""
    import sklearn.metrics

    predicted, gold = rank_choices(targets, scores)
    return {"accuracy": 100.0 * sklearn.metrics.accuracy_score(gold, predicted)}


# ---------------------------------------------------------------------------------------------
# Classification and regression over postprocessed predictions.


def accuracy(targets: Sequence[Any], predictions: Sequence[Any]) -> dict[str, float]:
    """Percentage of exact matches (the name FLAN tables use)."""
    import sklearn.metrics

    return {"accuracy": 100.0 * sklearn.metrics.accuracy_score(targets, predictions)}


def f1_binary(targets: Sequence[Any], predictions: Sequence[Any]) -> dict[str, float]:
    """F1 of the positive class (label 1 / True), as GLUE reports for MRPC and QQP."""
    import sklearn.metrics

    return {"f1": 100.0 * sklearn.metrics.f1_score(targets, predictions, average="binary")}


def f1_macro(targets: Sequence[Any], predictions: Sequence[Any]) -> dict[str, float]:
    """Unweighted mean of per-class F1 (classes seen in targets or predictions)."""
    import sklearn.metrics

    return {"f1_macro": 100.0 * sklearn.metrics.f1_score(targets, predictions, average="macro")}


def matthews_corrcoef(targets: Sequence[Any], predictions: Sequence[Any]) -> dict[str, float]:
    """Matthews correlation x 100 (CoLA)."""
    import sklearn.metrics

    return {"matthews_corrcoef": 100.0 * sklearn.metrics.matthews_corrcoef(targets, predictions)}


def pearson_corrcoef(targets: Sequence[float], predictions: Sequence[float]) -> dict[str, float]:
    """Pearson correlation x 100 (STS-B)."""
    import scipy.stats

    return {"pearson_corrcoef": 100.0 * float(scipy.stats.pearsonr(targets, predictions)[0])}


def spearman_corrcoef(targets: Sequence[float], predictions: Sequence[float]) -> dict[str, float]:
    """Spearman rank correlation x 100 (STS-B)."""
    import scipy.stats

    return {"spearman_corrcoef": 100.0 * float(scipy.stats.spearmanr(targets, predictions)[0])}


# ---------------------------------------------------------------------------------------------
# Generation metrics. A target may be one string or a list of references; each prediction is
# scored against every reference and the best score counts (FLAN's multi-reference rule).


def _references(target: Any) -> list[str]:
    if isinstance(target, str | bytes):
        target = [target]
    return [t.decode() if isinstance(t, bytes) else str(t) for t in target]


def bleu(targets: Sequence[Any], predictions: Sequence[str]) -> dict[str, float]:
    """Corpus BLEU as T5 (and so FLAN) computes it: sacrebleu with the ``intl`` tokenizer,
    ``exp`` smoothing with value 0, case-sensitive, no effective order; all references used.

    sacrebleu wants reference streams of equal length: rows with fewer references repeat their
    first one, which leaves the n-gram counts unchanged (the max count per n-gram is the same).
    With one reference per row this is exactly T5's call.
    """
    import sacrebleu

    refs = [_references(t) for t in targets]
    width = max((len(r) for r in refs), default=1)
    streams = [[r[i] if i < len(r) else r[0] for r in refs] for i in range(width)]
    score = sacrebleu.corpus_bleu(list(predictions), streams, **BLEU_SETTINGS)
    return {"bleu": float(score.score)}


# T5's ``t5.evaluation.metrics.bleu`` settings (FLAN's translation metric).
BLEU_SETTINGS = {
    "smooth_method": "exp",
    "smooth_value": 0.0,
    "force": False,
    "lowercase": False,
    "tokenize": "intl",
    "use_effective_order": False,
}


_ROUGE_TYPES = ("rouge1", "rouge2", "rougeLsum")


def rouge(targets: Sequence[Any], predictions: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measure x 100 (rouge-score, Porter stemming), max over references.

    ROUGE-L is the summary-level `rougeLsum` with one sentence per line, as T5 reports it.
    """
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(_ROUGE_TYPES), use_stemmer=True)
    totals = dict.fromkeys(_ROUGE_TYPES, 0.0)
    for target, prediction in zip(targets, predictions, strict=True):
        per_ref = [
            scorer.score(_sentence_lines(r), _sentence_lines(prediction))
            for r in _references(target)
        ]
        for kind in _ROUGE_TYPES:
            totals[kind] += max(s[kind].fmeasure for s in per_ref)
    n = max(len(predictions), 1)
    names = {"rouge1": "rouge1", "rouge2": "rouge2", "rougeLsum": "rougeL"}
    return {names[k]: 100.0 * v / n for k, v in totals.items()}


def _sentence_lines(text: str) -> str:
    """One sentence per line (rougeLsum splits on newlines); a light splitter, no NLTK."""
    return "\n".join(s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s)


def _normalize_answer(text: str, punctuation: frozenset[str], replacement: str) -> str:
    """Lower case, punctuation replaced, articles dropped, whitespace squashed (T5's qa_utils)."""
    text = text.lower()
    text = "".join(replacement if ch in punctuation else ch for ch in text)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


_PUNCTUATION = frozenset(string.punctuation)
_TRIVIA_QA_PUNCTUATION = frozenset(string.punctuation + "‘’´`_")


def normalize_squad(text: str) -> str:
    """The official SQuAD normalization: punctuation removed."""
    return _normalize_answer(text, _PUNCTUATION, "")


def normalize_trivia_qa(text: str) -> str:
    """The official TriviaQA normalization: punctuation (and quote marks, ``_``) become spaces."""
    return _normalize_answer(text, _TRIVIA_QA_PUNCTUATION, " ").strip()


def _token_f1(target: str, prediction: str) -> float:
    """Token F1 of two normalized strings; no shared token (or an empty side) scores 0."""
    gold, pred = target.split(), prediction.split()
    overlap = sum((collections.Counter(gold) & collections.Counter(pred)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(gold)
    return 2 * precision * recall / (precision + recall)


def _qa_metrics(
    targets: Sequence[Any], predictions: Sequence[str], normalize: Callable[[str], str]
) -> dict[str, float]:
    """Exact match and token F1 x 100, each the max over an example's references (T5's
    ``qa_utils.qa_metrics`` over normalized text)."""
    em = f1 = 0.0
    for target, prediction in zip(targets, predictions, strict=True):
        refs = [normalize(r) for r in _references(target)]
        pred = normalize(prediction)
        em += max(float(r == pred) for r in refs)
        f1 += max(_token_f1(r, pred) for r in refs)
    n = max(len(predictions), 1)
    return {"em": 100.0 * em / n, "f1": 100.0 * f1 / n}


def squad(targets: Sequence[Any], predictions: Sequence[str]) -> dict[str, float]:
    """SQuAD exact match and token F1 x 100 (T5's ``squad``; FLAN's metric for SQuAD, DROP,
    QuAC and CoQA)."""
    return _qa_metrics(targets, predictions, normalize_squad)


def trivia_qa(targets: Sequence[Any], predictions: Sequence[str]) -> dict[str, float]:
    """TriviaQA exact match and token F1 x 100 over the answer aliases (T5's ``trivia_qa``;
    FLAN's metric for TriviaQA and Natural Questions)."""
    return _qa_metrics(targets, predictions, normalize_trivia_qa)


# ---------------------------------------------------------------------------------------------
# MultiRC: T5's SuperGLUE metrics, which FLAN uses.


def _group_and_value(item: Any) -> tuple[Any, Any]:
    if isinstance(item, Mapping):
        return item["group"], item["value"]
    group, value = item
    return group, value


def multirc(targets: Sequence[Any], predictions: Sequence[Any]) -> dict[str, float]:
    """MultiRC's exact match over questions and F1 over all answers (F1a), x 100.

    Each target and prediction is ``{"group": question id, "value": 0/1}`` (T5's format) or a
    ``(question id, 0/1)`` pair; the prediction's group is ignored. Exact match: the share of
    questions whose every answer is labelled right. F1a: binary F1 over all answers, where a
    prediction other than 0/1 counts as wrong (T5's ``f1_score_with_invalid``).
    """
    import sklearn.metrics

    gold, pred, groups = [], [], []
    for t, p in zip(targets, predictions, strict=True):
        group, value = _group_and_value(t)
        groups.append(group)
        gold.append(int(value))
        pred.append(_group_and_value(p)[1] if isinstance(p, Mapping | tuple) else p)
    gold_arr = np.asarray(gold)
    pred_arr = np.asarray([int(v) if v in (0, 1) else -1 for v in pred])
    invalid = (pred_arr != 0) & (pred_arr != 1)
    pred_arr[invalid] = 1 - gold_arr[invalid]
    by_question: dict[Any, bool] = {}
    for g, t, p in zip(groups, gold_arr, pred_arr, strict=True):
        by_question[g] = by_question.get(g, True) and bool(t == p)
    exact = float(np.mean(list(by_question.values()))) if by_question else 0.0
    return {
        "exact_match": 100.0 * exact,
        "f1a": 100.0 * float(sklearn.metrics.f1_score(gold_arr, pred_arr)),
    }


def rank_classification_multirc(
    targets: Sequence[tuple], scores: Sequence[float]
) -> dict[str, float]:
    """MultiRC by rank classification: accuracy, exact match over questions, F1a.

    Target rows are ``(example id, option index, is_correct, question id)``; option 1 is the
    positive label ("yes": the answer is right). The question id groups the answers of one
    question for exact match.
    """
    rows = [tuple(t) for t in targets]
    if any(len(r) < 4 for r in rows):
        raise ValueError(
            "MultiRC exact match needs the question id as the 4th field of each rank target "
            "row (example id, option index, is_correct, question id)"
        )
    question = {int(r[0]): r[3] for r in rows}
    predicted, gold = rank_choices([r[:3] for r in rows], scores)
    ids = sorted(question)
    out = multirc(
        [(question[i], g) for i, g in zip(ids, gold, strict=True)],
        [(question[i], p) for i, p in zip(ids, predicted, strict=True)],
    )
    out["accuracy"] = 100.0 * float(np.mean(np.asarray(predicted) == np.asarray(gold)))
    return out


def edit_distance(targets: Sequence[Any], predictions: Sequence[str]) -> dict[str, float]:
    """Mean character Levenshtein distance to the closest reference (lower is better)."""
    total = sum(
        min(_levenshtein(r, p) for r in _references(t))
        for t, p in zip(targets, predictions, strict=True)
    )
    return {"edit_distance": total / max(len(predictions), 1)}


def _levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


# ---------------------------------------------------------------------------------------------
# Rank classification: dataset metrics over the chosen option index.


def rank_classification_f1(
    targets: Sequence[tuple[int, int, bool]], scores: Sequence[float]
) -> dict[str, float]:
    """Accuracy and binary F1 of the chosen option (option 1 = positive; MRPC, QQP, MultiRC)."""
    import sklearn.metrics

    predicted, gold = rank_choices(targets, scores)
    return {
        "accuracy": 100.0 * sklearn.metrics.accuracy_score(gold, predicted),
        "f1": 100.0 * sklearn.metrics.f1_score(gold, predicted, average="binary"),
    }


def rank_classification_f1_macro(
    targets: Sequence[tuple[int, int, bool]], scores: Sequence[float]
) -> dict[str, float]:
    """Accuracy and macro F1 over option indices (multi-class, e.g. CB)."""
    import sklearn.metrics

    predicted, gold = rank_choices(targets, scores)
    return {
        "accuracy": 100.0 * sklearn.metrics.accuracy_score(gold, predicted),
        "f1_macro": 100.0 * sklearn.metrics.f1_score(gold, predicted, average="macro"),
    }


def rank_classification_mcc(
    targets: Sequence[tuple[int, int, bool]], scores: Sequence[float]
) -> dict[str, float]:
    """Accuracy and Matthews correlation of the chosen option (CoLA)."""
    import sklearn.metrics

    predicted, gold = rank_choices(targets, scores)
    return {
        "accuracy": 100.0 * sklearn.metrics.accuracy_score(gold, predicted),
        "matthews_corrcoef": 100.0 * sklearn.metrics.matthews_corrcoef(gold, predicted),
    }
