"""Held-out evaluation by program: no program is in both the training and the test rows.

Programs are dealt into folds; each fold is scored by a model fitted on the others. The
threshold is the highest recall at a false-positive rate of at most 0.5% on the real (not
derived) held-out rows. `python -m agent.training.evaluate` prints the report.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from agent.detect.features import features
from agent.training.dataset import Row, load
from agent.training.linear import LinearModel, Matrix, Vector, fit, program_weights

FOLDS = 5
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
    derived: npt.NDArray[np.bool_]


def matrices(rows: Sequence[Row]) -> Matrices:
    x = np.asarray([row.features().values for row in rows], dtype=np.float64)
    unknown = np.asarray(
        [features(r.observation, None, r.gpu_use(), sizes=r.sizes).values for r in rows],
        dtype=np.float64,
    )
    y = np.asarray([row.target for row in rows], dtype=np.float64)
    derived = np.asarray([row.provenance.derived for row in rows], dtype=bool)
    return Matrices(x, unknown, y, tuple(row.program for row in rows), derived)


def train_model(data: Matrices, chosen: npt.NDArray[np.bool_]) -> LinearModel:
    """Fit on the chosen rows, each once as seen and once as if no runtime rule had matched,
    so the model also learns the signals underneath the rules: the case it exists for is a
    runtime the rules do not know."""
    x = np.concatenate([data.x[chosen], data.unknown[chosen]])
    y = np.concatenate([data.y[chosen], data.y[chosen]])
    programs = [p for p, c in zip(data.programs, chosen, strict=True) if c] * 2
    return fit(x, y, program_weights(programs, y))


def fold_of(program: str) -> int:
    """A program's fold, from a hash of its name: stable as programs are added."""
    return int.from_bytes(hashlib.sha256(program.encode()).digest()[:4], "big") % FOLDS


def held_out_scores(data: Matrices, *variants: Matrix) -> list[Vector]:
    """Each row scored by a model that never saw its program; then each variant matrix (the
    same rows with features changed) scored by the same fold models."""
    folds = np.asarray([fold_of(p) for p in data.programs])
    scores = [np.zeros(len(data.y)) for _ in range(1 + len(variants))]
    for fold in range(FOLDS):
        test = folds == fold
        train = ~test
        if not test.any():
            continue
        model = train_model(data, train)
        for found, x in zip(scores, (data.x, *variants), strict=True):
            found[test] = model.scores(x[test])
    return scores


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


def metrics(scores: Vector, y: Vector, threshold: float) -> Metrics:
    flagged = scores >= threshold
    return Metrics(
        rows=len(y),
        positives=int((y == 1).sum()),
        negatives=int((y == 0).sum()),
        true_positives=int((flagged & (y == 1)).sum()),
        false_positives=int((flagged & (y == 0)).sum()),
    )


def evaluate(rows: Sequence[Row]) -> tuple[float, list[str]]:
    """(threshold, report lines) from held-out scores."""
    from agent.training.report import report

    data = matrices(rows)
    variants = ablations(rows)
    scores, *others = held_out_scores(data, *variants.values())
    real = ~data.derived
    threshold = choose_threshold(scores[real], data.y[real])
    ablated = dict(zip(variants, others, strict=True))
    return threshold, report(rows, scores, threshold, ablated)


def main() -> int:
    _, lines = evaluate(sorted_rows(load()))
    print("\n".join(lines))
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
