"""What the fleet simulator counts, and the latency split it reports: pure, over recorded values.

Latency runs from sealing an envelope to its ack. Boot envelopes are each agent's boot
snapshot; steady ones were sealed after that agent's boot snapshot was acknowledged in
full; the settled window starts when every agent's boot was acknowledged.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.fleet_agent import Pending


def _floats() -> array[float]:
    return array("d")


@dataclass
class Tally:
    agents: int = 0  # identities driven (enrolled or not)
    sent: int = 0
    acked: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    good_refused: int = 0
    bad_sent: int = 0
    bad_wrong: list[str] = field(default_factory=list)
    replays: int = 0
    replays_not_duplicate: int = 0
    failures: int = 0
    failed_by_code: Counter[str] = field(default_factory=Counter)
    enroll_failures: int = 0
    enroll_errors: Counter[str] = field(default_factory=Counter)
    enroll_s: float = 0.0  # the longest enrollment phase of the simulator's processes
    warm_s: float = 0.0  # the longest warm-up (boot snapshots before the clock), --warm
    warm_events: int = 0
    latencies: array[float] = field(default_factory=_floats)  # seconds, every envelope
    boot_latencies: array[float] = field(default_factory=_floats)
    steady_latencies: array[float] = field(default_factory=_floats)
    steady_sealed: array[float] = field(default_factory=_floats)  # wall time, per steady one
    booted_at: array[float] = field(default_factory=_floats)  # wall time, per booted agent
    acked_upto: dict[str, int] = field(default_factory=dict)  # agent_id: last acked seq
    first_seq: dict[str, int] = field(default_factory=dict)
    pending: int = 0
    first_send: float = float("inf")  # time.time(), comparable across processes
    last_ack: float = 0.0
    start: float = 0.0  # wall time the traffic started (after enrollment)
    end: float = 0.0  # wall time the traffic window ended (start + duration)
    rss_base_mb: float = 0.0  # each process before its agents existed, summed
    rss_end_mb: float = 0.0  # at the end of the traffic window, before the drain
    rss_peak_mb: float = 0.0
    cpu_s: float = 0.0  # the simulator's own CPU over the traffic window

    def ack(self, done: Sequence[Pending], now: float, to_wall: float) -> None:
        """Record acknowledged envelopes; `now` on their `created` clock, + `to_wall` = wall."""
        for item in done:
            latency = now - item.created
            self.latencies.append(latency)
            if item.boot:
                self.boot_latencies.append(latency)
            elif item.steady:
                self.steady_latencies.append(latency)
                self.steady_sealed.append(item.created + to_wall)


_SUMMED = (
    "agents",
    "warm_events",
    "sent",
    "acked",
    "good_refused",
    "bad_sent",
    "replays",
    "replays_not_duplicate",
    "failures",
    "enroll_failures",
    "pending",
    "rss_base_mb",
    "rss_end_mb",
    "rss_peak_mb",
    "cpu_s",
)
_JOINED = ("latencies", "boot_latencies", "steady_latencies", "steady_sealed", "booted_at")


def merge(parts: Iterable[Tally]) -> Tally:
    total = Tally(start=float("inf"))
    for part in parts:
        for name in _SUMMED:
            setattr(total, name, getattr(total, name) + getattr(part, name))
        for name in _JOINED:
            getattr(total, name).extend(getattr(part, name))
        for counter in ("refused", "failed_by_code", "enroll_errors"):
            getattr(total, counter).update(getattr(part, counter))
        total.bad_wrong += part.bad_wrong
        total.acked_upto.update(part.acked_upto)
        total.first_seq.update(part.first_seq)
        total.first_send = min(total.first_send, part.first_send)
        total.last_ack = max(total.last_ack, part.last_ack)
        total.start = min(total.start, part.start)
        total.end = max(total.end, part.end)
        total.enroll_s = max(total.enroll_s, part.enroll_s)
        total.warm_s = max(total.warm_s, part.warm_s)
    return total


def percentile_ms(values: Iterable[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


def latency_split(t: Tally) -> dict[str, Any]:
    """p50/p99 overall, of boot snapshots, of steady envelopes and of the settled window."""
    result: dict[str, Any] = {}
    for name, values in (("", t.latencies), ("boot_", t.boot_latencies)):
        result[f"{name}p50_ms"] = percentile_ms(values, 0.50)
        result[f"{name}p99_ms"] = percentile_ms(values, 0.99)
    result["steady_p50_ms"] = percentile_ms(t.steady_latencies, 0.50)
    result["steady_p99_ms"] = percentile_ms(t.steady_latencies, 0.99)
    result["steady_events"] = len(t.steady_latencies)
    every_boot = len(t.booted_at) == t.agents > 0
    all_booted = max(t.booted_at) if every_boot else None
    result["all_booted_s"] = None if all_booted is None else round(all_booted - t.start, 1)
    settled = [
        latency
        for sealed, latency in zip(t.steady_sealed, t.steady_latencies, strict=True)
        if all_booted is not None and sealed >= all_booted
    ]
    window = t.end - all_booted if all_booted is not None else 0.0
    result["settled_window_s"] = round(max(0.0, window), 1)
    result["settled_p50_ms"] = percentile_ms(settled, 0.50)
    result["settled_p99_ms"] = percentile_ms(settled, 0.99)
    result["steady_events_per_s"] = round(len(settled) / window, 2) if window > 0 else 0.0
    return result
