"""Pure: chart geometry for server-rendered SVG (the pages run no script and load nothing).

Each function takes labelled values and returns boxes in SVG user units; templates draw
them with <rect> and <text> and colour them by class from style.css, since the CSP allows
no inline style.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

LABEL_WIDTH = 170  # room for a category name left of its bar
VALUE_WIDTH = 70  # room for the figure right of the longest bar
ROW = 22  # height of one horizontal bar's row
AXIS = 18  # room under a column chart for its day labels


@dataclass(frozen=True)
class Bar:
    """One bar: its box, its text anchors and what it says."""

    label: str
    value: int
    x: float
    y: float
    width: float
    height: float
    label_x: float
    value_x: float
    text_y: float
    css: str = "bar"


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    ticks: tuple[tuple[float, str], ...] = ()  # (x, text) under a column chart
    baseline: float = 0.0  # y of a column chart's axis


def _scale(value: int, top: int, room: float) -> float:
    """`value` as a length in `room`, where `top` fills it; a non-zero value stays visible."""
    if top <= 0 or value <= 0:
        return 0.0
    return max(1.0, round(room * value / top, 1))


def bar_chart(values: Sequence[tuple[str, int]], *, width: int = 520) -> Chart:
    """Horizontal bars, one row per (label, value), in the order given."""
    room = width - LABEL_WIDTH - VALUE_WIDTH
    top = max((v for _, v in values), default=0)
    bars = []
    for i, (label, value) in enumerate(values):
        length = _scale(value, top, room)
        y = i * ROW
        bars.append(
            Bar(
                label=label,
                value=value,
                x=LABEL_WIDTH,
                y=y + 3,
                width=length,
                height=ROW - 6,
                label_x=LABEL_WIDTH - 6,
                value_x=LABEL_WIDTH + length + 5,
                text_y=y + ROW / 2 + 4,
            )
        )
    return Chart(width=width, height=max(ROW, len(values) * ROW), bars=tuple(bars))


def column_chart(
    values: Sequence[tuple[str, int]], *, width: int = 520, height: int = 140, every: int = 7
) -> Chart:
    """Vertical columns left to right (a time series); every `every`-th label is a tick."""
    if not values:
        return Chart(width=width, height=height, bars=(), baseline=height - AXIS)
    slot = width / len(values)
    plot = height - AXIS - 14  # 14: room above the tallest column for its figure
    baseline = height - AXIS
    top = max(v for _, v in values)
    bars, ticks = [], []
    for i, (label, value) in enumerate(values):
        length = _scale(value, top, plot)
        x = round(i * slot + 1, 1)
        bars.append(
            Bar(
                label=label,
                value=value,
                x=x,
                y=baseline - length,
                width=round(max(1.0, slot - 2), 1),
                height=length,
                label_x=x,
                value_x=round(x + slot / 2, 1),
                text_y=baseline - length - 3,
            )
        )
        if i % every == 0 or i == len(values) - 1:
            ticks.append((x, label))
    return Chart(width, height, tuple(bars), tuple(ticks), baseline)


def split_bar(parts: Sequence[tuple[str, int, str]], *, width: int = 520) -> Chart:
    """One bar split in proportion to (label, value, css class) parts, e.g. online/silent."""
    total = sum(v for _, v, _ in parts)
    bars, x = [], 0.0
    for label, value, css in parts:
        length = round(width * value / total, 1) if total else 0.0
        bars.append(Bar(label, value, x, 0, length, ROW, x + 4, x + 4, ROW / 2 + 4, css))
        x = round(x + length, 1)
    return Chart(width=width, height=ROW, bars=tuple(bars))


def overview(stats: Mapping[str, Any]) -> dict[str, Chart]:
    """The overview page's charts from the store's figures (collector.store.overview)."""
    hosts = stats["hosts"]
    parts = [("online", hosts["online"], "online"), ("silent", hosts["silent"], "silent")]
    return {
        "agents": split_bar(parts),
        "kind": bar_chart([(k["label"], k["files"]) for k in stats["by_kind"]]),
        "format": bar_chart([(f["label"], f["files"]) for f in stats["by_format"]]),
        "size": bar_chart([(s["label"], s["files"]) for s in stats["by_size"]]),
        "alerts": column_chart([(d["day"][5:], d["alerts"]) for d in stats["alerts_per_day"]]),
        "top": bar_chart(
            [(m["name"] or m["sha256"][:12], m["hosts"]) for m in stats["top_models"]]
        ),
    }
