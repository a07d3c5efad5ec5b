"""What the ingest path counts, as a small sink the service calls; no metrics library here.

collector.telemetry turns these calls into Prometheus series; tests and tools that want
no figures pass NO_METRICS (the default), or a small fake that records the calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class Metrics(Protocol):
    def publish(self, envelopes: int) -> None:
        """A Publish request with this many envelopes arrived."""

    def in_flight(self, delta: int) -> None:
        """Publish requests being handled: +1 on arrival, -1 when answered."""

    def accepted(self, by_dataset: Mapping[str, int]) -> None:
        """Envelopes stored, counted by their event.dataset."""

    def refused(self, code: str, count: int = 1) -> None:
        """Envelopes or requests refused for good, by the check's code."""

    def duplicates(self, count: int) -> None: ...

    def shed(self, count: int) -> None:
        """Envelopes of requests dropped unverified because they waited too long (retried)."""

    def gaps(self, count: int) -> None:
        """Sequence ranges an agent skipped."""

    def rules_evaluated(self, seconds: float) -> None:
        """Time spent evaluating one batch's events against the rules."""

    def alerts_raised(self, by_level: Mapping[str, int]) -> None:
        """Rule matches that raised (or re-raised, deduplicated) an alert."""

    def store_error(self) -> None:
        """A request answered UNAVAILABLE because the store failed."""

    def retention_deleted(self, table: str, count: int) -> None: ...


class NoMetrics:
    """Counts nothing."""

    def publish(self, envelopes: int) -> None:
        pass

    def in_flight(self, delta: int) -> None:
        pass

    def accepted(self, by_dataset: Mapping[str, int]) -> None:
        pass

    def refused(self, code: str, count: int = 1) -> None:
        pass

    def duplicates(self, count: int) -> None:
        pass

    def shed(self, count: int) -> None:
        pass

    def gaps(self, count: int) -> None:
        pass

    def rules_evaluated(self, seconds: float) -> None:
        pass

    def alerts_raised(self, by_level: Mapping[str, int]) -> None:
        pass

    def store_error(self) -> None:
        pass

    def retention_deleted(self, table: str, count: int) -> None:
        pass


NO_METRICS: Metrics = NoMetrics()
