"""The forwarding figures as metric families."""

from __future__ import annotations

from collector.forward.forwarder import SinkMetrics
from collector.forward.metrics import FAMILIES, families


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


def test_every_family_has_one_sample_per_sink() -> None:
    found = {f.name: f for f in families([sink("hec"), sink("syslog")])}
    assert len(found) == len(FAMILIES)
    assert found["shadowai_forward_sent_total"].kind == "counter"
    assert found["shadowai_forward_sent_total"].samples == (("hec", 10.0), ("syslog", 10.0))
    assert found["shadowai_forward_lag_seconds"].kind == "gauge"
    assert dict(found["shadowai_forward_lag_seconds"].samples)["syslog"] == 12.5


def test_no_sink_means_no_families() -> None:
    assert families([]) == []
