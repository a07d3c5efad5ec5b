"""Pure: the forwarding figures as Prometheus text exposition lines, one family per figure."""

from __future__ import annotations

from collections.abc import Sequence

from collector.forward.forwarder import SinkMetrics

# name, type, SinkMetrics attribute, help
FAMILIES = (
    ("shadowai_forward_queued", "gauge", "queued", "Rows waiting in the forwarding queue."),
    ("shadowai_forward_queued_bytes", "gauge", "queued_bytes", "Bytes waiting in the queue."),
    ("shadowai_forward_lag_seconds", "gauge", "lag_s", "Age of the oldest queued row."),
    ("shadowai_forward_sent_total", "counter", "sent", "Events the SIEM accepted."),
    ("shadowai_forward_failed_total", "counter", "failed", "Send attempts to be retried."),
    ("shadowai_forward_rejected_total", "counter", "rejected", "Events refused for good."),
    ("shadowai_forward_dropped_total", "counter", "dropped", "Events dropped, queue full."),
    ("shadowai_forward_lost_total", "counter", "lost", "Events the queue could not store."),
)


def prometheus_lines(sinks: Sequence[SinkMetrics]) -> list[str]:
    """HELP, TYPE and one sample per sink for every family; nothing when no sink is set."""
    if not sinks:
        return []
    lines = []
    for name, kind, attribute, text in FAMILIES:
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        for sink in sinks:
            value = getattr(sink, attribute)
            lines.append(f'{name}{{sink="{sink.sink}"}} {_number(value)}')
    return lines


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.3f}"
