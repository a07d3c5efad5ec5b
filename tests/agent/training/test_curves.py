"""ROC AUC, average precision and the precision-recall points near a threshold."""

from __future__ import annotations

import numpy as np

from agent.training.curves import average_precision, points_near, roc_auc


def test_a_perfect_ranking_has_both_areas_one() -> None:
    scores = np.asarray([0.1, 0.2, 0.8, 0.9])
    y = np.asarray([0.0, 0.0, 1.0, 1.0])

    assert roc_auc(scores, y) == 1.0
    assert average_precision(scores, y) == 1.0


def test_one_ordinary_row_above_one_inference_row_costs_a_quarter_of_the_auc() -> None:
    scores = np.asarray([0.1, 0.7, 0.6, 0.9])
    y = np.asarray([0.0, 0.0, 1.0, 1.0])

    assert roc_auc(scores, y) == 0.75
    assert average_precision(scores, y) == (1.0 + 2 / 3) / 2


def test_areas_need_both_labels() -> None:
    assert roc_auc(np.asarray([0.5]), np.asarray([1.0])) is None
    assert average_precision(np.asarray([0.5]), np.asarray([0.0])) is None


def test_points_near_mark_where_the_threshold_stops() -> None:
    scores = np.asarray([0.1, 0.2, 0.3, 0.55, 0.6, 0.7, 0.9])
    y = np.asarray([0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0])

    points = points_near(scores, y, threshold=0.58, each_side=1)

    assert [p.threshold for p in points] == [0.7, 0.6, 0.55]
    chosen = [p for p in points if p.chosen]
    assert len(chosen) == 1 and chosen[0].threshold == 0.6
    assert (chosen[0].precision, chosen[0].recall, chosen[0].false_positives) == (1.0, 0.75, 0)
    assert points[-1].false_positives == 1
