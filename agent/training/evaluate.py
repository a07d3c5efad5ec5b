"""Held-out evaluation by fold group: no program, nor a near-duplicate of it, is in both the
training and the test rows, and the threshold each fold is graded at was chosen on scores of
its training part only (nested). `python -m agent.training.evaluate` prints the report.

The threshold is the highest recall at a false-positive rate of at most 0.5% on captured (not
derived) held-out rows: inside each outer fold on the inner folds' scores of its training
part; for the shipped model on the outer folds' scores of every row.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from agent.detect.features import features
from agent.training.dataset import Row, load
from agent.training.groups import deal, group_of
from agent.training.linear import LinearModel, Matrix, Vector, fit, program_weights

FOLDS = 5
INNER_FOLDS = FOLDS - 1
MAX_FPR = 0.005
HARD_CASES = (
    ("renamed llama.cpp binary", "llama-renamed-binary"),
    ("inference server on an unusual port", "ort-http-unusual-port"),
    ("database (PostgreSQL under pgbench)", "postgresql"),
    ("database (MariaDB under mysqlslap)", "mariadb"),
    ("browser (headless Chromium)", "chromium-headless"),
    ("compiler (gcc -O2)", "gcc-compile"),
    ("compiler (g++ -O2)", "g++-compile"),
    ("numeric job (numpy on OpenBLAS)", "numpy-matrix-job"),
)


@dataclass(frozen=True)
class Matrices:
    x: Matrix
    unknown: Matrix  # the same rows as if no runtime rule had matched
    y: Vector
    programs: tuple[str, ...]
    groups: tuple[str, ...]
    derived: npt.NDArray[np.bool_]


def matrices(rows: Sequence[Row]) -> Matrices:
    x = np.asarray([row.features().values for row in rows], dtype=np.float64)
    unknown = np.asarray(
        [features(r.observation, None, r.gpu_use(), sizes=r.sizes).values for r in rows],
        dtype=np.float64,
    )
    y = np.asarray([row.target for row in rows], dtype=np.float64)
    derived = np.asarray([row.provenance.derived for row in rows], dtype=bool)
    programs = tuple(row.program for row in rows)
    return Matrices(x, unknown, y, programs, tuple(map(group_of, programs)), derived)


def train_model(data: Matrices, chosen: npt.NDArray[np.bool_]) -> LinearModel:
    """Fit on the chosen rows, each once as seen and once as if no runtime rule had matched,
    so the model also learns the signals underneath the rules: the case it exists for is a
    runtime the rules do not know."""
    x = np.concatenate([data.x[chosen], data.unknown[chosen]])
    y = np.concatenate([data.y[chosen], data.y[chosen]])
    programs = [p for p, c in zip(data.programs, chosen, strict=True) if c] * 2
    return fit(x, y, program_weights(programs, y))


def folds_of(data: Matrices, chosen: npt.NDArray[np.bool_], count: int) -> npt.NDArray[np.int_]:
    """The fold of each chosen row (-1 for the others), dealt by fold group."""
    picked = np.flatnonzero(chosen)
    groups = [data.groups[i] for i in picked]
    dealt = deal(groups, [int(data.y[i]) for i in picked], count)
    found = np.full(len(data.y), -1)
    found[picked] = [dealt[g] for g in groups]
    return found


def cross_scores(
    data: Matrices, chosen: npt.NDArray[np.bool_], count: int, *variants: Matrix
) -> tuple[list[Vector], npt.NDArray[np.int_]]:
    """Each chosen row scored by a model fitted on the other folds of the chosen rows only;
    then each variant matrix (the same rows, features changed) by the same models. Also
    returns the folds. Rows not chosen score 0."""
    folds = folds_of(data, chosen, count)
    scores = [np.zeros(len(data.y)) for _ in range(1 + len(variants))]
    for fold in range(count):
        test = folds == fold
        if not test.any():
            continue
        model = train_model(data, chosen & ~test)
        for found, x in zip(scores, (data.x, *variants), strict=True):
            found[test] = model.scores(x[test])
    return scores, folds


@dataclass(frozen=True)
class HeldOut:
    """Outer held-out scores, and for each row the threshold its fold chose beforehand."""

    scores: Vector
    variants: list[Vector]
    folds: npt.NDArray[np.int_]
    thresholds: Vector  # per row: chosen on inner scores of its fold's training part
    fold_thresholds: tuple[float, ...]


def nested(data: Matrices, *variants: Matrix) -> HeldOut:
    """Outer folds score; inside each, the training part alone picks the threshold from its
    own inner folds' scores. The test rows of a fold never touch its threshold."""
    everything = np.ones(len(data.y), dtype=bool)
    (scores, *others), folds = cross_scores(data, everything, FOLDS, *variants)
    real = ~data.derived
    thresholds = np.zeros(len(data.y))
    chosen: list[float] = []
    for fold in range(FOLDS):
        train = folds != fold
        (inner, *_), _ = cross_scores(data, train, INNER_FOLDS)
        threshold = choose_threshold(inner[train & real], data.y[train & real])
        thresholds[folds == fold] = threshold
        chosen.append(threshold)
    return HeldOut(scores, others, folds, thresholds, tuple(chosen))


def ablations(rows: Sequence[Row]) -> dict[str, Matrix]:
    """The rows as a runtime nobody listed would show (no rule matched), and as psutil shows
    processes on macOS as well (no libraries, mapped files or file sizes either)."""
    hidden = []
    for row in rows:
        bare = replace(row.observation, libraries=(), mapped_files=())
        hidden.append(features(bare, None, row.gpu_use(), sizes=None).values)
    return {
        "no runtime rule matched": matrices(rows).unknown,
        "no rule, no libraries or mapped files": np.asarray(hidden, dtype=np.float64),
    }


def choose_threshold(scores: Vector, y: Vector, max_fpr: float = MAX_FPR) -> float:
    """Midway between the highest negative score that must stay below the threshold and the
    lowest positive score above it: the highest recall at FPR <= max_fpr, with a margin."""
    negatives = np.sort(scores[y == 0])[::-1]
    allowed = int(np.floor(max_fpr * len(negatives)))
    cut = float(negatives[allowed]) if allowed < len(negatives) else 0.0
    above = scores[(y == 1) & (scores > cut)]
    if not len(above):
        return round(min(1.0, cut + 1e-6), 6)
    return round((cut + float(above.min())) / 2, 6)


@dataclass(frozen=True)
class Metrics:
    rows: int
    positives: int
    negatives: int
    true_positives: int
    false_positives: int

    @property
    def recall(self) -> float | None:
        return self.true_positives / self.positives if self.positives else None

    @property
    def fpr(self) -> float | None:
        return self.false_positives / self.negatives if self.negatives else None

    @property
    def precision(self) -> float | None:
        flagged = self.true_positives + self.false_positives
        return self.true_positives / flagged if flagged else None


def metrics(scores: Vector, y: Vector, threshold: float | Vector) -> Metrics:
    """Counts at one threshold, or at a threshold per row (each fold's own)."""
    flagged = scores >= threshold
    return Metrics(
        rows=len(y),
        positives=int((y == 1).sum()),
        negatives=int((y == 0).sum()),
        true_positives=int((flagged & (y == 1)).sum()),
        false_positives=int((flagged & (y == 0)).sum()),
    )


@dataclass(frozen=True)
class Evaluation:
    threshold: float  # the shipped one
    summary: dict[str, object]  # headline held-out figures, kept beside the model
    lines: list[str]  # the report


def evaluate(rows: Sequence[Row]) -> Evaluation:
    """The shipped threshold, headline figures and report lines from nested held-out scores."""
    from agent.training.curves import average_precision, roc_auc
    from agent.training.report import report

    data = matrices(rows)
    variants = ablations(rows)
    held = nested(data, *variants.values())
    real = ~data.derived
    threshold = choose_threshold(held.scores[real], data.y[real])
    ablated = dict(zip(variants, held.variants, strict=True))
    found = metrics(held.scores[real], data.y[real], held.thresholds[real])
    summary: dict[str, object] = {
        "rows": "captured, held out by fold group, each fold at its own nested threshold",
        "fold_groups": len(set(data.groups)),
        "fold_thresholds": list(held.fold_thresholds),
        "recall": round(found.recall or 0.0, 4),
        "false_positive_rate": round(found.fpr or 0.0, 4),
        "roc_auc": round(roc_auc(held.scores[real], data.y[real]) or 0.0, 4),
        "average_precision": round(average_precision(held.scores[real], data.y[real]) or 0.0, 4),
    }
    return Evaluation(threshold, summary, report(rows, held, threshold, ablated))


def main() -> int:
    print("\n".join(evaluate(sorted_rows(load())).lines))
    return 0


def sorted_rows(rows: Sequence[Row]) -> list[Row]:
    """A fixed order whatever the order of files and lines: the same data, the same model."""
    return sorted(
        rows,
        key=lambda r: (
            r.program,
            r.provenance.date,
            r.provenance.sample,
            r.observation.pid,
            r.provenance.how,
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
