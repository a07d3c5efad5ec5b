"""Chart geometry: bars in proportion, inside the box, visible when not zero."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from collector.web import charts
from collector.web.charts import LABEL_WIDTH, ROW, VALUE_WIDTH, bar_chart, column_chart, split_bar

values = st.lists(st.tuples(st.text(max_size=20), st.integers(0, 10**12)), max_size=40)


def test_the_largest_bar_fills_the_room_and_others_are_in_proportion() -> None:
    chart = bar_chart([("gguf", 200), ("onnx", 50), ("pickle", 0)], width=520)
    room = 520 - LABEL_WIDTH - VALUE_WIDTH
    assert [b.width for b in chart.bars] == [room, room / 4, 0]
    assert [b.y for b in chart.bars] == [3, ROW + 3, 2 * ROW + 3]
    assert chart.height == 3 * ROW
    assert chart.bars[1].value_x == LABEL_WIDTH + room / 4 + 5  # the figure after its bar


def test_a_tiny_value_still_shows_a_sliver() -> None:
    chart = bar_chart([("many", 10**9), ("one", 1)])
    assert chart.bars[1].width == 1.0


def test_an_empty_chart_has_no_bars_and_still_a_size() -> None:
    assert bar_chart([]).bars == () and bar_chart([]).height == ROW
    assert column_chart([]).bars == ()
    assert split_bar([("online", 0, "online"), ("silent", 0, "silent")]).bars[0].width == 0


@given(values)
def test_bars_stay_inside_the_chart(pairs: list[tuple[str, int]]) -> None:
    chart = bar_chart(pairs)
    for bar in chart.bars:
        assert bar.x >= 0 and bar.x + bar.width <= chart.width - VALUE_WIDTH + 0.1
        assert bar.y >= 0 and bar.y + bar.height <= chart.height


@given(values)
def test_columns_stand_on_the_baseline_and_stay_inside(pairs: list[tuple[str, int]]) -> None:
    chart = column_chart(pairs, width=520, height=140)
    for bar in chart.bars:
        assert abs(bar.y + bar.height - chart.baseline) < 0.01
        assert bar.y >= 0 and bar.x + bar.width <= chart.width + 0.1
    assert len(chart.ticks) <= len(pairs)


def test_every_seventh_day_and_the_last_get_a_tick() -> None:
    days = [(f"11-{d:02d}", d) for d in range(1, 31)]
    chart = column_chart(days)
    assert [label for _, label in chart.ticks] == [
        "11-01",
        "11-08",
        "11-15",
        "11-22",
        "11-29",
        "11-30",
    ]


def test_a_split_bar_divides_the_width_in_proportion() -> None:
    chart = split_bar([("online", 3, "online"), ("silent", 1, "silent")], width=400)
    assert [(b.x, b.width, b.css) for b in chart.bars] == [(0, 300, "online"), (300, 100, "silent")]


def test_the_overview_charts_come_from_the_store_figures() -> None:
    figures = {
        "hosts": {"total": 3, "online": 2, "silent": 1},
        "by_kind": [{"label": "llm", "files": 5, "digests": 2}],
        "by_format": [{"label": "gguf", "files": 5, "digests": 2}],
        "by_size": [{"label": "1 - 4 GB", "files": 5}],
        "alerts_per_day": [{"day": "2026-11-30", "alerts": 4}],
        "top_models": [{"name": "", "sha256": "ab" * 32, "hosts": 2}],
    }
    drawn = charts.overview(figures)
    assert [b.value for b in drawn["agents"].bars] == [2, 1]
    assert drawn["alerts"].bars[0].label == "11-30"
    assert drawn["top"].bars[0].label == "abababababab"  # no name: the digest's start
