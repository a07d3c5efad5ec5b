"""The evaluation report as markdown tables: overall, per family, hard cases, ablations, and
per program. Pure: held-out scores in, lines out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from agent.training.dataset import Row
from agent.training.evaluate import FOLDS, HARD_CASES, MAX_FPR, Metrics, metrics
from agent.training.linear import Vector


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _table(header: Sequence[str], lines: Sequence[Sequence[object]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(str(cell) for cell in line) + " |" for line in lines]


def _summary(name: str, m: Metrics) -> list[object]:
    return [name, m.rows, m.positives, m.negatives, _pct(m.precision), _pct(m.recall), _pct(m.fpr)]


def _groups(rows: Sequence[Row], mask: npt.NDArray[np.bool_], key: str) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        if mask[index]:
            found.setdefault(str(getattr(row, key)), []).append(index)
    return dict(sorted(found.items()))


def _family_lines(
    rows: Sequence[Row], scores: Vector, threshold: float, mask: npt.NDArray[np.bool_]
) -> list[list[object]]:
    lines: list[list[object]] = []
    for family, indexes in _groups(rows, mask, "family").items():
        chosen = scores[indexes]
        programs = len({rows[i].program for i in indexes})
        flagged = int((chosen >= threshold).sum())
        share = flagged / len(indexes)
        label = rows[indexes[0]].label
        rate = f"recall {_pct(share)}" if label == "inference" else f"FPR {_pct(share)}"
        lines.append([family, label, programs, len(indexes), flagged, rate])
    return lines


def _program_lines(
    rows: Sequence[Row], scores: Vector, threshold: float, mask: npt.NDArray[np.bool_]
) -> list[list[object]]:
    lines: list[list[object]] = []
    for program, indexes in _groups(rows, mask, "program").items():
        chosen = scores[indexes]
        row = rows[indexes[0]]
        span = f"{chosen.min():.3f}-{chosen.max():.3f}"
        lines.append(
            [program, row.label, row.family, len(indexes), span, int((chosen >= threshold).sum())]
        )
    return sorted(lines, key=lambda line: (str(line[1]), str(line[0])))


def _hard_lines(rows: Sequence[Row], scores: Vector, threshold: float) -> list[list[object]]:
    from agent.detect.runtimes import identify

    lines: list[list[object]] = []
    for case, program in HARD_CASES:
        indexes = [i for i, row in enumerate(rows) if row.program == program]
        if not indexes:
            lines.append([case, program, "not captured", "", "", ""])
            continue
        match = identify(rows[indexes[0]].observation)
        chosen = scores[indexes]
        lines.append(
            [
                case,
                program,
                match.name if match else "none",
                len(indexes),
                f"{chosen.min():.3f}-{chosen.max():.3f}",
                f"{int((chosen >= threshold).sum())}/{len(indexes)}",
            ]
        )
    return lines


_FAMILY = ["family", "label", "programs", "rows", "flagged", "rate"]


def _overall(rows: Sequence[Row], scores: Vector, threshold: float) -> list[str]:
    y = np.asarray([row.target for row in rows], dtype=np.float64)
    derived = np.asarray([row.provenance.derived for row in rows], dtype=bool)
    real = ~derived
    return _table(
        ["rows", "n", "inference", "ordinary", "precision", "recall", "FPR"],
        [
            _summary("captured", metrics(scores[real], y[real], threshold)),
            _summary("derived (macOS, Windows)", metrics(scores[derived], y[derived], threshold)),
            _summary("all", metrics(scores, y, threshold)),
        ],
    )


def _ablation_lines(
    rows: Sequence[Row], ablated: Mapping[str, Vector], threshold: float
) -> list[list[object]]:
    y = np.asarray([row.target for row in rows], dtype=np.float64)
    real = np.asarray([not row.provenance.derived for row in rows], dtype=bool)
    lines: list[list[object]] = []
    for name, scores in ablated.items():
        found: Metrics = metrics(scores[real], y[real], threshold)
        families = _family_lines(rows, scores, threshold, real & (y == 1))
        detail = ", ".join(f"{line[0]} {str(line[5]).split()[-1]}" for line in families)
        lines.append([name, _pct(found.recall), _pct(found.fpr), detail])
    return lines


def report(
    rows: Sequence[Row], scores: Vector, threshold: float, ablated: Mapping[str, Vector]
) -> list[str]:
    """The evaluation as markdown: overall, per family, hard cases, ablations, per program."""
    derived = np.asarray([row.provenance.derived for row in rows], dtype=bool)
    everything = np.ones(len(rows), dtype=bool)
    return [
        f"Rows: {len(rows)} ({int((~derived).sum())} captured, {int(derived.sum())} derived), "
        f"programs: {len({row.program for row in rows})}, folds: {FOLDS} (by program), "
        f"threshold: {threshold:.6f} (highest recall at FPR <= {100 * MAX_FPR:.1f}% "
        "on captured held-out rows).",
        *("", "### Overall (held out by program)", ""),
        *_overall(rows, scores, threshold),
        *("", "### Per family (captured rows)", ""),
        *_table(_FAMILY, _family_lines(rows, scores, threshold, ~derived)),
        *("", "### Per family (derived rows)", ""),
        *_table(_FAMILY, _family_lines(rows, scores, threshold, derived)),
        *("", "### Hard cases", ""),
        *_table(
            ["case", "program", "runtime rule", "rows", "held-out score", "flagged"],
            _hard_lines(rows, scores, threshold),
        ),
        *("", "### Without the runtime rules (captured rows, same held-out models)", ""),
        *_table(
            ["variant", "recall", "FPR", "recall per family"],
            _ablation_lines(rows, ablated, threshold),
        ),
        *("", "### Per program", ""),
        *_table(
            ["program", "label", "family", "rows", "held-out score", "flagged"],
            _program_lines(rows, scores, threshold, everything),
        ),
    ]
