"""The forwarding figures in the Prometheus text format."""

from __future__ import annotations

from collector.forward.forwarder import SinkMetrics
from collector.forward.metrics import FAMILIES, prometheus_lines


def sink(name: str) -> SinkMetrics:
    return SinkMetrics(
        sink=name,
        queued=3,
        queued_bytes=900,
        sent=10,
        failed=2,
        rejected=1,
        dropped=0,
        lost=0,
        lag_s=12.5,
    )


def test_every_family_has_help_type_and_one_sample_per_sink() -> None:
    lines = prometheus_lines([sink("hec"), sink("syslog")])
    assert len(lines) == len(FAMILIES) * 4
    assert "# TYPE shadowai_forward_sent_total counter" in lines
    assert 'shadowai_forward_sent_total{sink="hec"} 10' in lines
    assert 'shadowai_forward_lag_seconds{sink="syslog"} 12.500' in lines


def test_no_sink_means_no_lines() -> None:
    assert prometheus_lines([]) == []
