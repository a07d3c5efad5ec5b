"""Each fold is graded at a threshold its training part chose alone: changing a fold's test
rows changes its scores, never its threshold."""

from __future__ import annotations

import numpy as np

from agent.training.evaluate import FOLDS, Matrices, nested


def _data(seed: int = 0) -> Matrices:
    """Twenty programs of three rows, half inference, two noisy informative features."""
    rng = np.random.default_rng(seed)
    programs = tuple(f"p{n}" for n in range(20) for _ in range(3))
    y = np.asarray([float(int(p[1:]) % 2) for p in programs])
    x = np.column_stack([y + rng.normal(0, 0.8, len(y)), rng.normal(0, 1, len(y))])
    return Matrices(x, x.copy(), y, programs, programs, np.zeros(len(y), dtype=bool))


def test_a_fold_threshold_does_not_see_its_test_rows() -> None:
    data = _data()
    before = nested(data)
    test = before.folds == 0
    x = data.x.copy()
    x[test] = -x[test]  # the fold's own rows turned upside down
    after = nested(Matrices(x, x.copy(), data.y, data.programs, data.groups, data.derived))

    assert after.fold_thresholds[0] == before.fold_thresholds[0]
    assert not np.allclose(after.scores[test], before.scores[test])
    assert after.fold_thresholds[1:] != before.fold_thresholds[1:]  # they trained on fold 0


def test_every_row_is_graded_at_its_own_fold_threshold() -> None:
    held = nested(_data(1))

    assert sorted(set(held.folds.tolist())) == list(range(FOLDS))
    for fold, threshold in enumerate(held.fold_thresholds):
        assert (held.thresholds[held.folds == fold] == threshold).all()
