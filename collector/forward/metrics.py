"""Pure: the forwarding figures as metric families, one per figure with a sample per sink.

collector.telemetry exposes them in the Prometheus registry; nothing here imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from collector.forward.forwarder import SinkMetrics

Figure = Callable[[SinkMetrics], float]
# name, type, the figure, help
FAMILIES: tuple[tuple[str, str, Figure, str], ...] = (
    ("shadowai_forward_queued", "gauge", lambda s: s.queued, "Rows waiting in the queue."),
    ("shadowai_forward_queued_bytes", "gauge", lambda s: s.queued_bytes, "Bytes in the queue."),
    ("shadowai_forward_lag_seconds", "gauge", lambda s: s.lag_s, "Age of the oldest row."),
    ("shadowai_forward_sent_total", "counter", lambda s: s.sent, "Events the SIEM accepted."),
    ("shadowai_forward_failed_total", "counter", lambda s: s.failed, "Sends to be retried."),
    ("shadowai_forward_rejected_total", "counter", lambda s: s.rejected, "Refused for good."),
    ("shadowai_forward_dropped_total", "counter", lambda s: s.dropped, "Dropped, queue full."),
    ("shadowai_forward_lost_total", "counter", lambda s: s.lost, "The queue could not store."),
)


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # "gauge" or "counter"
    help: str
    samples: tuple[tuple[str, float], ...]  # (sink, value)


def families(sinks: Sequence[SinkMetrics]) -> list[Family]:
    """Every family with one sample per sink; nothing when no sink is set."""
    if not sinks:
        return []
    return [
        Family(name, kind, text, tuple((s.sink, float(figure(s))) for s in sinks))
        for name, kind, figure, text in FAMILIES
    ]
