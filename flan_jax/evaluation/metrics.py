"""Metric functions in seqio's calling convention, computed by well-kept libraries.

seqio picks the metric kind from the argument names: ``(targets, predictions)`` for generated
text, ``(targets, scores)`` for scored rows (rank classification).
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any

import numpy as np
import sklearn.metrics


def exact_match(targets: Sequence[Any], predictions: Sequence[Any]) -> dict[str, float]:
    """Percentage of predictions equal to their target (after postprocessing)."""
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
    predicted, gold = rank_choices(targets, scores)
    return {"accuracy": 100.0 * sklearn.metrics.accuracy_score(gold, predicted)}
