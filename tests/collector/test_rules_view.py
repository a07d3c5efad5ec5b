"""The rules listing: counts merged into each rule, sorted and paged in memory."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.paging import BadListing, Listing, decode_cursor, encode_cursor
from collector.rules_view import RULE_SORTS, page_rules, with_counts

RULES: list[dict[str, object]] = [
    {"id": f"r-{i}", "title": f"rule {i % 4}", "level": ["low", "high", "critical"][i % 3]}
    for i in range(11)
]
COUNTS: dict[str, dict[str, object]] = {
    "r-1": {"alerts_total": 5, "alerts_open": 2, "last_match": "2026-11-30T10:00:00+00:00"},
    "r-4": {"alerts_total": 1, "alerts_open": 0, "last_match": "2026-11-01T10:00:00+00:00"},
}


def test_rules_without_alerts_count_zero() -> None:
    rows = with_counts(RULES, COUNTS)
    assert rows[1]["alerts_total"] == 5 and rows[1]["title"] == "rule 1"
    assert (rows[0]["alerts_total"], rows[0]["alerts_open"], rows[0]["last_match"]) == (0, 0, None)


def _walk(sort: str, descending: bool, limit: int) -> list[str]:
    rows = with_counts(RULES, COUNTS)
    seen: list[str] = []
    cursor = None
    name = ("-" if descending else "") + sort
    while True:
        after = None if cursor is None else decode_cursor(cursor, sort=name)
        page = page_rules(rows, Listing(limit=limit, after=after, sort=sort, descending=descending))
        seen += [str(r["id"]) for r in page.items]
        cursor = page.next
        if cursor is None:
            return seen


@pytest.mark.parametrize("sort", RULE_SORTS)
@pytest.mark.parametrize("descending", [False, True])
def test_pages_visit_every_rule_once_in_order(sort: str, descending: bool) -> None:
    seen = _walk(sort, descending, limit=3)
    assert sorted(seen) == sorted(str(r["id"]) for r in RULES)
    assert seen == _walk(sort, descending, limit=100)


def test_most_severe_and_most_open_come_first_descending() -> None:
    assert _walk("level", True, 100)[0] in {"r-2", "r-5", "r-8"}
    assert _walk("alerts_open", True, 100)[0] == "r-1"


@given(st.lists(st.none() | st.booleans() | st.integers() | st.text(max_size=5), max_size=3))
def test_a_forged_cursor_is_a_bad_listing(key: list[object]) -> None:
    rows = with_counts(RULES, COUNTS)
    cursor = encode_cursor(key, sort="alerts_total")  # type: ignore[arg-type]
    try:
        after = decode_cursor(cursor, sort="alerts_total")
        page_rules(rows, Listing(after=after, sort="alerts_total"))
    except BadListing as exc:
        assert exc.field == "cursor"
