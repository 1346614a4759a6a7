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


# T5's bleu (FLAN's translation metric) calls sacrebleu with these arguments.
T5_BLEU = dict(
    smooth_method="exp",
    smooth_value=0.0,
    force=False,
    lowercase=False,
    tokenize="intl",
    use_effective_order=False,
)


def test_bleu_equals_sacrebleu_with_t5s_settings_single_and_multi_reference():
    expected = sacrebleu.corpus_bleu(PREDS, [REFS], **T5_BLEU).score
    assert metrics.bleu(REFS, PREDS)["bleu"] == pytest.approx(expected)
    multi = [[r, "a different reference"] for r in REFS]
    expected = sacrebleu.corpus_bleu(PREDS, [REFS, ["a different reference"] * 3], **T5_BLEU)
    assert metrics.bleu(multi, PREDS)["bleu"] == pytest.approx(expected.score)


def test_bleu_uses_the_intl_tokenizer_not_13a():
    # Unicode punctuation and symbols: 13a keeps "«Bonjour»" and "€" glued to their words,
    # intl splits them; the two scores differ, and ours is intl's.
    preds = ["«Bonjour», dit-il — 5€.", "Ça coûte 10€ maintenant…"]
    refs = ["«Bonjour», a-t-il dit — 5€.", "Ça coûte 10€ aujourd'hui…"]
    intl = sacrebleu.corpus_bleu(preds, [refs], **T5_BLEU).score
    thirteen_a = sacrebleu.corpus_bleu(preds, [refs], **{**T5_BLEU, "tokenize": "13a"}).score
    assert intl != pytest.approx(thirteen_a)
    assert metrics.bleu(refs, preds)["bleu"] == pytest.approx(intl)


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
    # TriviaQA's normalization turns punctuation (and quote marks, "_") into spaces instead.
    assert metrics.normalize_trivia_qa("The  Eiffel-Tower, Paris’s_x!") == "eiffel tower paris s x"
    targets = [["Paris", "the city of Paris"], "Barack Obama", "1945"]
    preds = ["paris.", "Obama", "in 1946"]
    out = metrics.squad(targets, preds)
    # EM: 1, 0, 0. F1: 1; obama vs barack obama: P=1 R=1/2 -> 2/3; 0.
    assert out["em"] == pytest.approx(100 / 3)
    assert out["f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)
    assert metrics.trivia_qa(targets, preds)["em"] == pytest.approx(100 / 3)


def test_squad_f1_by_hand_from_t5s_definition():
    # t5.evaluation.qa_utils: normalize, then token F1 with no shared token -> 0, max over refs.
    # "a red big apple" -> "red big apple" vs pred "the big red car" -> "big red car":
    # common {big, red} = 2, P = 2/3, R = 2/3, F1 = 2/3. Second ref "apple" -> P 0 -> 0.
    out = metrics.squad([["a red big apple", "apple"]], ["The big red car!"])
    assert out == {"em": 0.0, "f1": pytest.approx(100 * 2 / 3)}
    # Repeated tokens count with multiplicity: "go go go" vs "go": common 1, P 1, R 1/3 -> 1/2.
    assert metrics.squad(["go go go"], ["go"])["f1"] == pytest.approx(50.0)
    # An answer that normalizes to nothing ("The.") scores 0 F1 and 1 EM against itself,
    # as in T5 (no shared token -> 0), where a plain "empty == empty" rule would give F1 1.
    assert metrics.squad(["The."], ["a"]) == {"em": 100.0, "f1": 0.0}


def test_multirc_exact_match_over_questions_and_f1_over_answers():
    # Question q1 has 3 answers (all right), q2 has 2 (one wrong), q3 has 1 (wrong).
    targets = [("q1", 1), ("q1", 0), ("q1", 1), ("q2", 1), ("q2", 0), ("q3", 0)]
    preds = [1, 0, 1, 1, 1, 1]
    out = metrics.multirc(targets, preds)
    assert out["exact_match"] == pytest.approx(100 / 3)
    expected_f1 = sklearn.metrics.f1_score([t for _, t in targets], preds)
    assert out["f1a"] == pytest.approx(100 * expected_f1)  # P = 3/5, R = 1 -> 3/4
    assert out["f1a"] == pytest.approx(75.0)
    # T5's dict format, and an invalid prediction counted as wrong.
    as_dicts = metrics.multirc(
        [{"group": g, "value": v} for g, v in targets],
        [{"group": g, "value": p} for (g, _), p in zip(targets, [1, 0, 1, 1, 7, 0])],
    )
    # Effective predictions 1 0 1 1 (7 -> wrong: 1) 0: q2 wrong; TP 3, FP 1 -> F1 = 6/7.
    assert as_dicts["exact_match"] == pytest.approx(200 / 3)
    assert as_dicts["f1a"] == pytest.approx(100 * 6 / 7)


def test_rank_classification_multirc_groups_rows_by_question():
    # Three answers (examples 0, 1 of question 10; example 2 of question 11), options (no, yes).
    rows = [(0, 0, False, 10), (0, 1, True, 10), (1, 0, True, 10), (1, 1, False, 10)]
    rows += [(2, 0, False, 11), (2, 1, True, 11)]
    scores = [-2.0, -1.0, -0.5, -3.0, -0.1, -4.0]  # picks yes, no, no
    out = metrics.rank_classification_multirc(rows, scores)
    assert out["accuracy"] == pytest.approx(200 / 3)
    assert out["exact_match"] == pytest.approx(50.0)  # question 10 right, 11 wrong
    assert out["f1a"] == pytest.approx(100 * sklearn.metrics.f1_score([1, 0, 1], [1, 0, 0]))
    with pytest.raises(ValueError, match="question id"):
        metrics.rank_classification_multirc([r[:3] for r in rows], scores)


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
        (metrics.multirc, "predictions"),
        (metrics.rank_classification_multirc, "scores"),
        (metrics.edit_distance, "predictions"),
        (metrics.pearson_corrcoef, "predictions"),
        (metrics.rank_classification_f1, "scores"),
        (metrics.rank_classification_mcc, "scores"),
    ],
)
def test_seqio_signatures(fn, kind):
    # seqio picks the metric kind from the argument names.
    assert list(inspect.signature(fn).parameters) == ["targets", kind]
