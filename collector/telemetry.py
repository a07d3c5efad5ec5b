"""The collector's Prometheus registry: the ingest sink's counters, plus figures read at
scrape time (store reachability, agents enrolled and online, forwarding queues).

Each collector service owns its registry (never prometheus_client's global one), so that
tests and several collectors in one process each count their own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector
from sqlalchemy.exc import DBAPIError

from collector.forward.forwarder import SinkMetrics
from collector.forward.metrics import families
from collector.store import Store

log = logging.getLogger(__name__)

# generate_latest writes the classic text format; every Prometheus version reads 0.0.4.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# An agent sends agent_health every minute by default; five missed ones is offline.
ONLINE_WITHIN = timedelta(minutes=5)
_BATCH_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000)
_EVALUATION_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)


class PrometheusMetrics:
    """collector.metrics.Metrics, counted into this instance's own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._events = Counter(
            "shadowai_events_ingested", "Events stored, by dataset.", ["dataset"], registry=r
        )
        self._accepted = Counter("shadowai_envelopes_accepted", "Envelopes stored.", registry=r)
        self._shed = Counter(
            "shadowai_envelopes_shed",
            "Envelopes of requests dropped unverified after waiting too long (agents resend).",
            registry=r,
        )
        self._duplicates = Counter(
            "shadowai_envelopes_duplicate", "Envelopes already held (acked again).", registry=r
        )
        self._refused = Counter(
            "shadowai_refusals", "Envelopes and requests refused, by code.", ["code"], registry=r
        )
        self._gaps = Counter("shadowai_gaps", "Sequence ranges agents skipped.", registry=r)
        self._batch = Histogram(
            "shadowai_publish_batch_envelopes",
            "Envelopes per Publish request.",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self._in_flight = Gauge(
            "shadowai_publish_in_flight", "Publish requests being handled.", registry=r
        )
        self._evaluation = Histogram(
            "shadowai_rule_evaluation_seconds",
            "Time to evaluate one Publish batch's events against the rules.",
            buckets=_EVALUATION_BUCKETS,
            registry=r,
        )
        self._alerts = Counter(
            "shadowai_alerts_raised", "Rule matches that raised an alert.", ["level"], registry=r
        )
        self._store_errors = Counter(
            "shadowai_store_errors", "Requests answered UNAVAILABLE: the store failed.", registry=r
        )
        self._retention = Counter(
            "shadowai_retention_deleted", "Rows deleted by retention.", ["table"], registry=r
        )

    # the sink (collector.metrics.Metrics)

    def publish(self, envelopes: int) -> None:
        self._batch.observe(envelopes)

    def in_flight(self, delta: int) -> None:
        self._in_flight.inc(delta)

    def accepted(self, by_dataset: Mapping[str, int]) -> None:
        for dataset, count in by_dataset.items():
            self._events.labels(dataset=dataset).inc(count)
        self._accepted.inc(sum(by_dataset.values()))

    def refused(self, code: str, count: int = 1) -> None:
        self._refused.labels(code=code).inc(count)

    def duplicates(self, count: int) -> None:
        self._duplicates.inc(count)

    def shed(self, count: int) -> None:
        self._shed.inc(count)

    def gaps(self, count: int) -> None:
        self._gaps.inc(count)

    def rules_evaluated(self, seconds: float) -> None:
        self._evaluation.observe(seconds)

    def alerts_raised(self, by_level: Mapping[str, int]) -> None:
        for level, count in by_level.items():
            self._alerts.labels(level=level).inc(count)

    def store_error(self) -> None:
        self._store_errors.inc()

    def retention_deleted(self, table: str, count: int) -> None:
        self._retention.labels(table=table).inc(count)

    # figures read at scrape time

    def watch_store(self, store: Store, clock: Callable[[], datetime]) -> None:
        self.registry.register(_StoreFigures(store, clock))

    def watch_forwarding(self, sinks: Callable[[], Sequence[SinkMetrics]]) -> None:
        self.registry.register(_ForwardFigures(sinks))

    def render(self) -> bytes:
        """The Prometheus text exposition of everything registered."""
        return generate_latest(self.registry)


class _StoreFigures(Collector):
    def __init__(self, store: Store, clock: Callable[[], datetime]) -> None:
        self._store, self._clock = store, clock

    def describe(self) -> list[Metric]:
        return []  # unchecked at registration: collecting needs the database

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("shadowai_store_up", "1 when the database answers, else 0.")
        try:
            enrolled, online = self._store.agent_counts(online_since=self._clock() - ONLINE_WITHIN)
        except DBAPIError as exc:
            log.warning("metrics: store unavailable: %s", exc.orig)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily(
            "shadowai_agents_enrolled", "Agents enrolled and not revoked.", value=enrolled
        )
        yield GaugeMetricFamily(
            "shadowai_agents_online",
            f"Enrolled agents heard from within {int(ONLINE_WITHIN.total_seconds())} s.",
            value=online,
        )


class _ForwardFigures(Collector):
    def __init__(self, sinks: Callable[[], Sequence[SinkMetrics]]) -> None:
        self._sinks = sinks

    def collect(self) -> Iterator[Metric]:
        for family in families(self._sinks()):
            metric: GaugeMetricFamily | CounterMetricFamily
            if family.kind == "counter":
                metric = CounterMetricFamily(family.name, family.help, labels=["sink"])
            else:
                metric = GaugeMetricFamily(family.name, family.help, labels=["sink"])
            for sink, value in family.samples:
                metric.add_metric([sink], value)
            yield metric
