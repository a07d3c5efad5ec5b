"""The retry policy: full jitter within a doubling window, capped, honouring server hints."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.backoff import delay_for, next_delay

unit = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
attempts = st.integers(min_value=0, max_value=10**6)


def test_window_doubles_with_each_attempt() -> None:
    top = [next_delay(n, base=0.5, cap=1000.0, rand=lambda: 1.0) for n in range(5)]
    assert top == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_delay_is_the_random_fraction_of_the_window() -> None:
    assert next_delay(3, base=0.5, cap=60.0, rand=lambda: 0.25) == 1.0
    assert next_delay(3, base=0.5, cap=60.0, rand=lambda: 0.0) == 0.0


def test_window_stops_growing_at_the_cap() -> None:
    assert next_delay(20, base=0.5, cap=60.0, rand=lambda: 1.0) == 60.0
    assert next_delay(20, base=0.5, cap=60.0, rand=lambda: 0.5) == 30.0


def test_huge_attempt_gives_the_cap_without_overflow() -> None:
    assert next_delay(10**9, rand=lambda: 1.0) == 60.0
    assert next_delay(2000, base=7.0, cap=5.0, rand=lambda: 1.0) == 5.0


def test_rand_outside_unit_interval_is_clamped_to_the_window() -> None:
    assert next_delay(1, base=1.0, cap=60.0, rand=lambda: 3.0) == 2.0
    assert next_delay(1, base=1.0, cap=60.0, rand=lambda: -1.0) == 0.0


def test_negative_attempt_is_refused() -> None:
    with pytest.raises(ValueError, match="attempt"):
        next_delay(-1, rand=lambda: 0.5)


def test_hint_raises_the_delay() -> None:
    assert delay_for(0, retry_after=10.0, rand=lambda: 0.5) == 10.0


def test_hint_below_the_jitter_keeps_the_jitter() -> None:
    assert delay_for(10, retry_after=1.0, rand=lambda: 0.5) == 30.0


def test_hint_above_the_cap_is_capped() -> None:
    assert delay_for(0, retry_after=3600.0, rand=lambda: 0.5) == 60.0
    assert delay_for(0, retry_after=math.inf, rand=lambda: 0.5) == 60.0


def test_missing_nan_or_negative_hint_leaves_the_jitter() -> None:
    for hint in (None, math.nan, -5.0):
        assert delay_for(2, retry_after=hint, rand=lambda: 0.5) == 1.0


@given(attempt=attempts, r=unit)
def test_delay_is_always_within_zero_and_cap(attempt: int, r: float) -> None:
    delay = next_delay(attempt, rand=lambda: r)
    assert 0.0 <= delay <= 60.0


@given(
    attempt=attempts,
    r=unit,
    base=st.floats(min_value=0.0, max_value=1e300),
    cap=st.floats(min_value=0.0, max_value=1e6),
)
def test_delay_within_window_for_any_base_and_cap(
    attempt: int, r: float, base: float, cap: float
) -> None:
    delay = next_delay(attempt, base=base, cap=cap, rand=lambda: r)
    assert 0.0 <= delay <= cap


@given(
    attempt=attempts,
    r=unit,
    hint=st.none() | st.floats(allow_nan=True, allow_infinity=True),
)
def test_hinted_delay_respects_hint_and_cap(attempt: int, r: float, hint: float | None) -> None:
    delay = delay_for(attempt, retry_after=hint, rand=lambda: r)
    assert 0.0 <= delay <= 60.0
    if hint is not None and not math.isnan(hint) and hint >= 0:
        assert delay >= min(hint, 60.0)
