"""Threshold-free figures beside the chosen operating point: ROC AUC, average precision (the
area under the precision-recall curve, step-wise), and the curve's points near a threshold.
Pure: scores and labels in, numbers out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.training.linear import Vector


def roc_auc(scores: Vector, y: Vector) -> float | None:
    """The chance that a random inference row outscores a random ordinary one (ties half);
    None without both labels."""
    from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]  # no stubs

    if len(set(y.tolist())) < 2:
        return None
    return float(roc_auc_score(y, scores))


def average_precision(scores: Vector, y: Vector) -> float | None:
    """Precision averaged over the recall steps, highest threshold first; None without
    positives."""
    from sklearn.metrics import average_precision_score

    if not (y == 1).any():
        return None
    return float(average_precision_score(y, scores))


@dataclass(frozen=True)
class CurvePoint:
    threshold: float  # the lowest score flagged at this point
    precision: float
    recall: float
    false_positives: int
    chosen: bool  # the point the chosen threshold lands on


def points_near(
    scores: Vector, y: Vector, threshold: float, each_side: int = 3
) -> list[CurvePoint]:
    """The precision-recall curve at every distinct score, keeping the `each_side` points on
    either side of `threshold` and the point it lands on; highest threshold first."""
    cuts = np.unique(scores)[::-1]
    positives = max(int((y == 1).sum()), 1)
    found = []
    for cut in cuts:
        flagged = scores >= cut
        tp = int((flagged & (y == 1)).sum())
        fp = int((flagged & (y == 0)).sum())
        found.append((float(cut), tp / (tp + fp), tp / positives, fp))
    landed = sum(1 for cut, *_ in found if cut >= threshold) - 1  # the lowest cut >= threshold
    low, high = max(landed - each_side, 0), landed + each_side + 1
    return [
        CurvePoint(cut, precision, recall, fp, index == landed)
        for index, (cut, precision, recall, fp) in enumerate(found)
        if low <= index < high
    ]
