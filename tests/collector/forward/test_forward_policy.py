"""The retry policy: what each answer means, and how long to wait."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.forward.policy import Verdict, backoff, hec_verdict, retry_after


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.ACCEPTED),
        (503, Verdict.RETRY),
        (429, Verdict.RETRY),
        (500, Verdict.RETRY),
        (401, Verdict.RETRY),
        (403, Verdict.RETRY),
        (301, Verdict.RETRY),
        (400, Verdict.REFUSED),
        (413, Verdict.REFUSED),
    ],
)
def test_each_status_has_a_meaning(status: int, verdict: Verdict) -> None:
    assert hec_verdict(status) is verdict


def test_retry_after_takes_only_delay_seconds() -> None:
    assert retry_after("7") == 7.0
    assert retry_after(" 7 ") == 7.0
    assert retry_after("Fri, 04 Dec 2026 10:00:00 GMT") is None
    assert retry_after("-1") is None
    assert retry_after("٣") is None  # a digit to str.isdigit, not to HTTP
    assert retry_after("99999999") == 3600.0


def test_the_window_doubles_up_to_the_cap() -> None:
    top = [backoff(n, rand=lambda: 0.999999, base=0.5, cap=10) for n in range(8)]
    assert top[:5] == pytest.approx([0.5, 1, 2, 4, 8], rel=1e-3)
    assert top[5:] == pytest.approx([10, 10, 10], rel=1e-3)


def test_the_peer_hint_raises_the_delay_but_never_past_the_cap() -> None:
    assert backoff(0, rand=lambda: 0.0, hint=5, cap=60) == 5
    assert backoff(0, rand=lambda: 0.0, hint=500, cap=60) == 60
    assert backoff(0, rand=lambda: 0.0, hint=math.nan, cap=60) == 0


@given(
    st.integers(0, 10_000),
    st.floats(0, 1, exclude_max=True),
    st.none() | st.floats(allow_nan=True),
    st.floats(0, 1e6),
)
def test_any_delay_is_within_zero_and_the_cap(
    attempt: int, r: float, hint: float | None, cap: float
) -> None:
    delay = backoff(attempt, rand=lambda: r, hint=hint, cap=cap)
    assert 0 <= delay <= cap
