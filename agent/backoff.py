"""The shipper's retry policy: how long to wait before attempt N, as a pure function.

Nothing here sleeps; the caller waits (interruptibly) for the returned number of seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable

# 2**1023 is the largest power of two a float holds; beyond it the ceiling is the cap anyway.
_MAX_EXPONENT = 1023


def _ceiling(attempt: int, base: float, cap: float) -> float:
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    if not (base >= 0 and cap >= 0):
        raise ValueError(f"base and cap must be >= 0, got base={base} cap={cap}")
    # Products past the float range come out as inf, never OverflowError; min() then gives cap.
    return min(cap, base * float(2 ** min(attempt, _MAX_EXPONENT)))


def next_delay(
    attempt: int, *, base: float = 0.5, cap: float = 60.0, rand: Callable[[], float]
) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)], attempt counting from 0.

    `rand` returns a float in [0, 1); spreading retries over the whole window keeps a fleet
    of agents from reconnecting in lockstep when the collector comes back.
    """
    ceiling = _ceiling(attempt, base, cap)
    return min(ceiling, max(0.0, rand() * ceiling))


def delay_for(
    attempt: int,
    *,
    retry_after: float | None,
    rand: Callable[[], float],
    base: float = 0.5,
    cap: float = 60.0,
) -> float:
    """The jittered delay, raised to the server's retry-after hint, never above `cap`.

    The cap wins over the hint so that a confused or hostile server cannot park the agent
    indefinitely; a NaN or negative hint is ignored.
    """
    delay = next_delay(attempt, base=base, cap=cap, rand=rand)
    if retry_after is None or math.isnan(retry_after) or retry_after < 0:
        return delay
    return min(cap, max(delay, retry_after))
