"""Metrics against their reference libraries on fixed inputs, and hand-computed values."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import sacrebleu
import scipy.stats
import sklearn.metrics
from rouge_score import rouge_scorer

from flan_jax import metrics

LABELS_T = [1, 0, 1, 1, 0, 2, 1, 0]
LABELS_P = [1, 0, 0, 1, 1, 2, 1, 2]


def test_classification_metrics_equal_sklearn():
    assert metrics.accuracy(LABELS_T, LABELS_P)["accuracy"] == pytest.approx(62.5)
    binary_t, binary_p = [min(x, 1) for x in LABELS_T], [min(x, 1) for x in LABELS_P]
    assert metrics.f1_binary(binary_t, binary_p)["f1"] == pytest.approx(
        100 * sklearn.metrics.f1_score(binary_t, binary_p)
    )
    assert metrics.f1_macro(LABELS_T, LABELS_P)["f1_macro"] == pytest.approx(
        100 * sklearn.metrics.f1_score(LABELS_T, LABELS_P, average="macro")
    )
    assert metrics.matthews_corrcoef(LABELS_T, LABELS_P)["matthews_corrcoef"] == pytest.approx(
        100 * sklearn.metrics.matthews_corrcoef(LABELS_T, LABELS_P)
    )


def test_correlations_equal_scipy():
    t = [0.0, 1.5, 2.0, 3.7, 4.1, 5.0]
    p = [0.3, 1.0, 2.5, 3.0, 5.0, 4.4]
    assert metrics.pearson_corrcoef(t, p)["pearson_corrcoef"] == pytest.approx(
        100 * scipy.stats.pearsonr(t, p)[0]
    )
    assert metrics.spearman_corrcoef(t, p)["spearman_corrcoef"] == pytest.approx(
        100 * scipy.stats.spearmanr(t, p)[0]
    )


PREDS = ["the cat sat on the mat", "a quick brown fox jumps", "hello there world"]
REFS = ["the cat is on the mat", "the quick brown fox jumped over", "hello world"]


def test_bleu_equals_sacrebleu_single_and_multi_reference():
    expected = sacrebleu.corpus_bleu(PREDS, [REFS]).score
    assert metrics.bleu(REFS, PREDS)["bleu"] == pytest.approx(expected)
    multi = [[r, "a different reference"] for r in REFS]
    expected = sacrebleu.corpus_bleu(PREDS, [REFS, ["a different reference"] * 3]).score
    assert metrics.bleu(multi, PREDS)["bleu"] == pytest.approx(expected)


def test_rouge_equals_rouge_score_with_max_over_references():
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True)
    single = metrics.rouge(REFS, PREDS)
    for ours, theirs in (("rouge1", "rouge1"), ("rouge2", "rouge2"), ("rougeL", "rougeLsum")):
        expected = np.mean([scorer.score(r, p)[theirs].fmeasure for r, p in zip(REFS, PREDS)])
        assert single[ours] == pytest.approx(100 * expected)
    # A second, perfect reference for the first example lifts only that example to 1.0.
    multi = metrics.rouge([[REFS[0], PREDS[0]], REFS[1], REFS[2]], PREDS)
    others = [scorer.score(r, p)["rouge1"].fmeasure for r, p in zip(REFS[1:], PREDS[1:])]
    assert multi["rouge1"] == pytest.approx(100 * (1.0 + sum(others)) / 3)


def test_squad_trivia_qa_and_normalization():
    assert metrics.normalize_squad("The  Eiffel-Tower, Paris!") == "eiffeltower paris"
    targets = [["Paris", "the city of Paris"], "Barack Obama", "1945"]
    preds = ["paris.", "Obama", "in 1946"]
    out = metrics.squad(targets, preds)
    # EM: 1, 0, 0. F1: 1; obama vs barack obama: P=1 R=1/2 -> 2/3; 0.
    assert out["em"] == pytest.approx(100 / 3)
    assert out["f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)
    assert metrics.trivia_qa(targets, preds)["em"] == pytest.approx(100 / 3)


def test_edit_distance():
    out = metrics.edit_distance(["kitten", ["flaw", "lawn"]], ["sitting", "lawn"])
    assert out["edit_distance"] == pytest.approx((3 + 0) / 2)


def test_rank_classification_variants_over_option_index():
    # Three examples, two options each; option 1 is "positive".
    targets = [(0, 0, True), (0, 1, False), (1, 0, False), (1, 1, True), (2, 0, False)]
    targets.append((2, 1, True))
    scores = [-1.0, -2.0, -3.0, -1.0, -0.5, -4.0]  # predicted: 0, 1, 0; gold: 0, 1, 1
    assert metrics.rank_classification(targets, scores)["accuracy"] == pytest.approx(200 / 3)
    f1 = metrics.rank_classification_f1(targets, scores)
    assert f1["f1"] == pytest.approx(100 * sklearn.metrics.f1_score([0, 1, 1], [0, 1, 0]))
    mcc = metrics.rank_classification_mcc(targets, scores)
    assert mcc["matthews_corrcoef"] == pytest.approx(
        100 * sklearn.metrics.matthews_corrcoef([0, 1, 1], [0, 1, 0])
    )
    macro = metrics.rank_classification_f1_macro(targets, scores)
    assert macro["f1_macro"] == pytest.approx(
        100 * sklearn.metrics.f1_score([0, 1, 1], [0, 1, 0], average="macro")
    )


@pytest.mark.parametrize(
    "fn, kind",
    [
        (metrics.accuracy, "predictions"),
        (metrics.bleu, "predictions"),
        (metrics.rouge, "predictions"),
        (metrics.squad, "predictions"),
        (metrics.trivia_qa, "predictions"),
        (metrics.edit_distance, "predictions"),
        (metrics.pearson_corrcoef, "predictions"),
        (metrics.rank_classification_f1, "scores"),
        (metrics.rank_classification_mcc, "scores"),
    ],
)
def test_seqio_signatures(fn, kind):
    # seqio picks the metric kind from the argument names.
    assert list(inspect.signature(fn).parameters) == ["targets", kind]
