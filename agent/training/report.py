"""The evaluation report as markdown tables: folds and their thresholds, overall with ROC AUC
and average precision, the precision-recall curve near the threshold, per family, hard cases,
ablations, per program. Pure: held-out scores in, lines out.

Row decisions use each row's own fold threshold (chosen before its fold was scored); the
shipped threshold is reported beside them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from agent.training.curves import average_precision, points_near, roc_auc
from agent.training.dataset import Row
from agent.training.evaluate import (
    FOLDS,
    HARD_CASES,
    INNER_FOLDS,
    MAX_FPR,
    HeldOut,
    Metrics,
    metrics,
)
from agent.training.linear import Vector

Mask = npt.NDArray[np.bool_]


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _table(header: Sequence[str], lines: Sequence[Sequence[object]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(str(cell) for cell in line) + " |" for line in lines]


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _summary(name: str, m: Metrics, scores: Vector, y: Vector) -> list[object]:
    counts = [name, m.rows, m.positives, m.negatives]
    rates = [_pct(m.precision), _pct(m.recall), _pct(m.fpr), m.false_positives]
    return [*counts, *rates, _num(roc_auc(scores, y)), _num(average_precision(scores, y))]


def _groups(rows: Sequence[Row], mask: npt.NDArray[np.bool_], key: str) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        if mask[index]:
            found.setdefault(str(getattr(row, key)), []).append(index)
    return dict(sorted(found.items()))


def _family_lines(rows: Sequence[Row], flags: Mask, mask: Mask) -> list[list[object]]:
    lines: list[list[object]] = []
    for family, indexes in _groups(rows, mask, "family").items():
        programs = len({rows[i].program for i in indexes})
        flagged = int(flags[indexes].sum())
        share = flagged / len(indexes)
        label = rows[indexes[0]].label
        rate = f"recall {_pct(share)}" if label == "inference" else f"FPR {_pct(share)}"
        lines.append([family, label, programs, len(indexes), flagged, rate])
    return lines


def _program_lines(
    rows: Sequence[Row], scores: Vector, flags: Mask, folds: npt.NDArray[np.int_]
) -> list[list[object]]:
    from agent.training.groups import group_of

    lines: list[list[object]] = []
    everything = np.ones(len(rows), dtype=bool)
    for program, indexes in _groups(rows, everything, "program").items():
        chosen = scores[indexes]
        row = rows[indexes[0]]
        span = f"{chosen.min():.3f}-{chosen.max():.3f}"
        group = group_of(program)
        lines.append(
            [
                program,
                row.label,
                row.family,
                "" if group == program else group,
                int(folds[indexes[0]]),
                len(indexes),
                span,
                int(flags[indexes].sum()),
            ]
        )
    return sorted(lines, key=lambda line: (str(line[1]), str(line[0])))


def _hard_lines(rows: Sequence[Row], scores: Vector, flags: Mask) -> list[list[object]]:
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
                f"{int(flags[indexes].sum())}/{len(indexes)}",
            ]
        )
    return lines


_FAMILY = ["family", "label", "programs", "rows", "flagged", "rate"]


def _overall(rows: Sequence[Row], held: HeldOut) -> list[str]:
    y = np.asarray([row.target for row in rows], dtype=np.float64)
    derived = np.asarray([row.provenance.derived for row in rows], dtype=bool)
    lines = []
    for name, mask in (("captured", ~derived), ("derived (macOS, Windows)", derived)):
        found = metrics(held.scores[mask], y[mask], held.thresholds[mask])
        lines.append(_summary(name, found, held.scores[mask], y[mask]))
    found = metrics(held.scores, y, held.thresholds)
    lines.append(_summary("all", found, held.scores, y))
    header = ["rows", "n", "inference", "ordinary", "precision", "recall", "FPR"]
    return _table([*header, "false positives", "ROC AUC", "average precision"], lines)


def _fold_lines(rows: Sequence[Row], held: HeldOut) -> list[list[object]]:
    from agent.training.groups import group_of

    y = np.asarray([row.target for row in rows], dtype=np.float64)
    real = np.asarray([not row.provenance.derived for row in rows], dtype=bool)
    lines: list[list[object]] = []
    for fold, threshold in enumerate(held.fold_thresholds):
        test = held.folds == fold
        chosen = test & real
        found = metrics(held.scores[chosen], y[chosen], threshold)
        groups = {group_of(rows[int(i)].program) for i in np.flatnonzero(test)}
        counts = f"{found.positives} / {found.negatives}"
        rates = [_pct(found.recall), _pct(found.fpr), found.false_positives]
        lines.append([fold, len(groups), int(test.sum()), counts, f"{threshold:.6f}", *rates])
    return lines


def _curve_lines(rows: Sequence[Row], held: HeldOut, threshold: float) -> list[list[object]]:
    y = np.asarray([row.target for row in rows], dtype=np.float64)
    real = np.asarray([not row.provenance.derived for row in rows], dtype=bool)
    return [
        [
            f"{point.threshold:.6f}",
            _pct(point.precision),
            _pct(point.recall),
            point.false_positives,
            f"the shipped {threshold:.6f} stops here" if point.chosen else "",
        ]
        for point in points_near(held.scores[real], y[real], threshold)
    ]


def _ablation_lines(
    rows: Sequence[Row], ablated: Mapping[str, Vector], thresholds: Vector
) -> list[list[object]]:
    y = np.asarray([row.target for row in rows], dtype=np.float64)
    real = np.asarray([not row.provenance.derived for row in rows], dtype=bool)
    lines: list[list[object]] = []
    for name, scores in ablated.items():
        found: Metrics = metrics(scores[real], y[real], thresholds[real])
        families = _family_lines(rows, scores >= thresholds, real & (y == 1))
        detail = ", ".join(f"{line[0]} {str(line[5]).split()[-1]}" for line in families)
        auc = _num(roc_auc(scores[real], y[real]))
        lines.append([name, _pct(found.recall), _pct(found.fpr), auc, detail])
    return lines


def report(
    rows: Sequence[Row], held: HeldOut, threshold: float, ablated: Mapping[str, Vector]
) -> list[str]:
    """The evaluation as markdown, every decision at the row's own fold threshold."""
    derived = np.asarray([row.provenance.derived for row in rows], dtype=bool)
    flags = held.scores >= held.thresholds
    groups = _groups(rows, np.ones(len(rows), dtype=bool), "program")
    from agent.training.groups import group_of

    return [
        f"Rows: {len(rows)} ({int((~derived).sum())} captured, {int(derived.sum())} derived), "
        f"programs: {len(groups)}, fold groups: {len({group_of(p) for p in groups})}, "
        f"folds: {FOLDS} (by group, each fold's threshold from {INNER_FOLDS} inner folds of "
        f"its training part), shipped threshold: {threshold:.6f} (highest recall at FPR <= "
        f"{100 * MAX_FPR:.1f}% on captured held-out rows of all {FOLDS} folds).",
        *("", "### Folds: the threshold each chose on its training part alone", ""),
        *_table(
            [
                "fold",
                "groups",
                "rows",
                "captured inference / ordinary",
                "threshold",
                "recall",
                "FPR",
                "false positives",
            ],
            _fold_lines(rows, held),
        ),
        *("", "### Overall (held out by group, each fold at its own threshold)", ""),
        *_overall(rows, held),
        *("", "### Precision-recall near the shipped threshold (captured held-out rows)", ""),
        *_table(
            ["lowest score flagged", "precision", "recall", "false positives", ""],
            _curve_lines(rows, held, threshold),
        ),
        *("", "### Per family (captured rows)", ""),
        *_table(_FAMILY, _family_lines(rows, flags, ~derived)),
        *("", "### Per family (derived rows)", ""),
        *_table(_FAMILY, _family_lines(rows, flags, derived)),
        *("", "### Hard cases", ""),
        *_table(
            ["case", "program", "runtime rule", "rows", "held-out score", "flagged"],
            _hard_lines(rows, held.scores, flags),
        ),
        *("", "### Without the runtime rules (captured rows, same held-out models)", ""),
        *_table(
            ["variant", "recall", "FPR", "ROC AUC", "recall per family"],
            _ablation_lines(rows, ablated, held.thresholds),
        ),
        *("", "### Per program", ""),
        *_table(
            [
                "program",
                "label",
                "family",
                "fold group",
                "fold",
                "rows",
                "held-out score",
                "flagged",
            ],
            _program_lines(rows, held.scores, flags, held.folds),
        ),
    ]
