"""Pure retry policy: what a SIEM's answer means for a batch, and how long to wait.

Nothing here sleeps or reads a clock; the forwarder waits (interruptibly) for the result.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable


class Verdict(enum.Enum):
    ACCEPTED = "accepted"  # delete the batch from the queue
    RETRY = "retry"  # keep it; wait and send again
    REFUSED = "refused"  # the peer will never take this batch as it is: split it or drop it


# Retried even though they are 4xx: a wrong token or URL is the operator's to fix, and the
# events must still be there when it is fixed.
_RETRY_4XX = frozenset({401, 403, 404, 408, 429})


def hec_verdict(status: int) -> Verdict:
    """The meaning of an HTTP event collector's status code for the batch it answered."""
    if 200 <= status < 300:
        return Verdict.ACCEPTED
    if status in _RETRY_4XX or status >= 500 or status < 200:
        return Verdict.RETRY
    if 300 <= status < 400:
        return Verdict.RETRY  # a redirect is a misconfigured URL; never follow it with the token
    return Verdict.REFUSED  # 400 invalid event, 413 too large, ...


def retry_after(value: str | None, *, cap: float = 3600.0) -> float | None:
    """Seconds from a Retry-After header in its delay-seconds form; None for anything else."""
    if value is None:
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    return min(float(text), cap)


def backoff(
    attempt: int,
    *,
    rand: Callable[[], float],
    hint: float | None = None,
    base: float = 0.5,
    cap: float = 60.0,
) -> float:
    """Full jitter in [0, min(cap, base * 2**attempt)], raised to the peer's hint, at most cap.

    Jitter spreads the replicas of a collector fleet that all saw the SIEM come back; the
    cap wins over the hint so a confused peer cannot park the forwarder for hours.
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    ceiling = min(cap, base * float(2 ** min(attempt, 1023)))
    delay = min(ceiling, max(0.0, rand() * ceiling))
    if hint is None or math.isnan(hint) or hint < 0:
        return delay
    return min(cap, max(delay, hint))


def split(batch_len: int) -> int:
    """The batch size to try after a refusal of `batch_len` events; 0 means drop the one."""
    return batch_len // 2
