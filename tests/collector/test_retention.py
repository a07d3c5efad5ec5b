"""The retention policy: what age each table's rows may reach."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from collector.chain import MAX_AGE_MS, MAX_SKEW_MS
from collector.errors import CollectorError
from collector.retention import MIN_ENVELOPE_DAYS, Retention, cutoffs

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_defaults_keep_envelopes_a_month_and_events_a_quarter() -> None:
    found = cutoffs(Retention(), NOW)
    assert found["events"] == NOW - timedelta(days=90)
    # 30 days is the chain's clock window; the skew an agent may have comes on top.
    assert found["envelopes"] == NOW - timedelta(days=30, minutes=5)


def test_an_envelope_outlives_the_window_in_which_a_replay_could_pass() -> None:
    window = timedelta(milliseconds=MAX_AGE_MS + MAX_SKEW_MS)
    for days in (MIN_ENVELOPE_DAYS, 31, 365):
        assert NOW - cutoffs(Retention(envelopes_days=days), NOW)["envelopes"] >= window


def test_zero_keeps_forever() -> None:
    assert cutoffs(Retention(envelopes_days=0, events_days=0), NOW) == {}
    assert set(cutoffs(Retention(envelopes_days=0), NOW)) == {"events"}


@pytest.mark.parametrize("days", [1, 7, MIN_ENVELOPE_DAYS - 1])
def test_envelopes_kept_less_than_the_clock_window_are_refused(days: int) -> None:
    with pytest.raises(CollectorError, match=f"{days} days is shorter than the 30 days"):
        Retention(envelopes_days=days)


def test_negative_days_are_refused() -> None:
    with pytest.raises(CollectorError, match="events: -1 days is negative"):
        Retention(events_days=-1)


def test_events_may_be_kept_a_single_day() -> None:
    assert cutoffs(Retention(events_days=1), NOW)["events"] == NOW - timedelta(days=1)
