"""Triage values from forms and API bodies: each is clean or a TriageError, never a crash."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.store.triage_values import (
    MAX_BULK,
    MAX_ID,
    BulkChange,
    StatusChange,
    TriageError,
    alert_filter,
    alert_id,
    alert_ids,
    assignee,
    comment,
    level_rank,
    status_change,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_levels_rank_from_informational_to_critical() -> None:
    ranks = [level_rank(x) for x in ("informational", "low", "medium", "high", "critical")]
    assert ranks == [0, 1, 2, 3, 4]
    assert level_rank("<loud>") == -1


def test_alert_ids_are_bigints_from_one() -> None:
    assert alert_id("42") == 42 and alert_id(MAX_ID) == MAX_ID and alert_id(" 7 ") == 7
    for bad in ["0", "-1", str(MAX_ID + 1), "9223372036854775808", "1e3", "٣", "", True, 2**64]:
        with pytest.raises(TriageError) as caught:
            alert_id(bad)
        assert caught.value.field == "alert_id"


@given(st.text(max_size=30) | st.integers())
def test_any_id_text_is_an_id_in_range_or_refused(value: str | int) -> None:
    try:
        parsed = alert_id(value)
    except TriageError:
        return
    assert 1 <= parsed <= MAX_ID


def test_bulk_ids_are_distinct_and_bounded() -> None:
    assert alert_ids(["3", 1, "3", 2]) == [3, 1, 2]
    with pytest.raises(TriageError, match="at least one"):
        alert_ids([])
    with pytest.raises(TriageError, match=f"at most {MAX_BULK}"):
        alert_ids(range(1, MAX_BULK + 2))


def test_suppressing_needs_a_future_until_in_utc() -> None:
    later = datetime(2027, 1, 1, 9, 0, tzinfo=timezone(timedelta(hours=2)))
    change = status_change("suppressed", later, " vendor fix ", now=NOW)
    assert change == StatusChange("suppressed", later.astimezone(UTC), " vendor fix ")
    assert change.until is not None and change.until.tzinfo is UTC
    refusals = [
        ("suppressed", None, "until"),
        ("suppressed", NOW - timedelta(days=1), "until"),
        ("resolved", NOW + timedelta(days=1), "until"),
        ("gone", None, "status"),
        ("suppressed", datetime(2027, 1, 1), "until"),  # no time zone
    ]
    for status, until, field in refusals:
        with pytest.raises(TriageError) as caught:
            status_change(status, until, "", now=NOW)
        assert caught.value.field == field, (status, until)


def test_an_until_at_the_end_of_time_is_refused_not_overflowed() -> None:
    edge = datetime(9999, 12, 31, 23, 0, tzinfo=timezone(-timedelta(hours=5)))
    with pytest.raises(TriageError, match="out of range"):
        status_change("suppressed", edge, "", now=NOW)


def test_assignee_is_a_trimmed_name_or_nobody() -> None:
    assert assignee(" alice ") == "alice"
    assert assignee("") is None and assignee("   ") is None and assignee(None) is None
    for bad in ["a" * 256, "bob\x00", "eve\x1b[31m", "\ud800"]:
        with pytest.raises(TriageError):
            assignee(bad)


def test_comments_keep_their_lines_but_not_control_characters() -> None:
    assert comment("  first line\nsecond\tline  ") == "first line\nsecond\tline"
    for bad in ["", "   ", "x" * 10_001, "nul\x00"]:
        with pytest.raises(TriageError) as caught:
            comment(bad)
        assert caught.value.field == "text"


@given(st.text(max_size=300))
def test_any_comment_text_is_kept_or_refused(text: str) -> None:
    try:
        kept = comment(text)
    except TriageError:
        return
    assert kept and kept == kept.strip()
    kept.encode("utf-8")


def test_filters_of_a_query_string() -> None:
    where = alert_filter(status="open", level="high", rule="", host="laptop", assignee=None)
    assert (where.status, where.level, where.rule, where.host) == ("open", "high", None, "laptop")
    with pytest.raises(TriageError):
        alert_filter(status="gone")
    with pytest.raises(TriageError):
        alert_filter(level="loud")


def test_a_bulk_change_changes_something() -> None:
    assert BulkChange(assign=True).assignee is None
    with pytest.raises(TriageError):
        BulkChange()
