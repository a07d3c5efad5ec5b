"""When the worker overspends (pure): samples of its CPU time and memory in, a verdict out.

The limits follow osquery's watchdog in spirit: a share of one core sustained over a
window (not a spike), and a memory ceiling; restarts back off so a worker that trips at
once is not restarted in a tight loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MB = 1 << 20


@dataclass(frozen=True)
class Limits:
    cpu_share: float = 0.10  # of one core, averaged over `window`
    window: float = 60.0  # seconds
    memory_bytes: int = 200 * MB  # private memory (unique set size)
    quarantine_seconds: float = 86400.0
    backoff_base: float = 5.0
    backoff_max: float = 600.0


@dataclass(frozen=True)
class Sample:
    at: float  # monotonic seconds
    cpu_seconds: float  # user + system CPU time of the worker so far
    memory_bytes: int


def verdict(samples: Sequence[Sample], limits: Limits) -> str | None:
    """ "memory" or "cpu" when the worker broke a limit, else None.

    Memory trips on the latest sample. CPU trips when the worker has spent more than its
    share of a whole window (share x window CPU-seconds) within the last window: a runaway
    is stopped as soon as the window's average can no longer come back under the share,
    while bursts that fit the budget (start-up, a scan at its share) never trip it.
    """
    if not samples:
        return None
    last = samples[-1]
    if last.memory_bytes > limits.memory_bytes:
        return "memory"
    first = _at_or_before(samples, last.at - limits.window) or samples[0]
    spent = last.cpu_seconds - first.cpu_seconds
    return "cpu" if spent > limits.cpu_share * limits.window else None


def _at_or_before(samples: Sequence[Sample], moment: float) -> Sample | None:
    found = None
    for sample in samples:
        if sample.at > moment:
            break
        found = sample
    return found


def trim(samples: list[Sample], limits: Limits) -> None:
    """Drop samples older than needed to judge the window (one before it is kept)."""
    if not samples:
        return
    moment = samples[-1].at - limits.window
    while len(samples) > 2 and samples[1].at <= moment:
        del samples[0]


def backoff(restarts_in_a_row: int, limits: Limits) -> float:
    """Seconds to wait before the next start: doubling from the base, capped."""
    if restarts_in_a_row <= 0:
        return 0.0
    return float(min(limits.backoff_max, limits.backoff_base * 2 ** (restarts_in_a_row - 1)))
