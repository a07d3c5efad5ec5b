"""Drain one sink's queue into its SIEM: a forwarder thread per sink, every wait interruptible.

`Forwarder.step` is one attempt (peek, format, send, ack or back off) and returns how long
to wait; the thread only loops over it. Rows leave the queue only when the SIEM accepted
them, or when it refused a single row outright (counted as rejected).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from collector.forward.policy import Verdict, backoff, split
from collector.forward.queue import ForwardQueue, QueuedRow
from collector.forward.transport import Delivery

log = logging.getLogger(__name__)

IDLE_POLL_S = 5.0  # an empty queue is looked at again this often even without a wake-up


class Transport(Protocol):
    def send(self, records: Sequence[bytes]) -> Delivery: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class SinkMetrics:
    """Plain figures for /metrics; counters count since this process started."""

    sink: str
    queued: int
    queued_bytes: int
    sent: int
    failed: int
    rejected: int
    dropped: int  # the queue was full (persisted across restarts)
    lost: int  # the queue could not be written (disk full, I/O error)
    lag_s: float


class Forwarder:
    def __init__(
        self,
        *,
        name: str,
        queue: ForwardQueue,
        transport: Transport,
        format_row: Callable[[QueuedRow, float], bytes],
        clock: Callable[[], float],
        rand: Callable[[], float],
        batch_max_events: int = 500,
        batch_max_bytes: int = 1_000_000,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 60.0,
    ) -> None:
        self.name = name
        self._queue, self._transport, self._format = queue, transport, format_row
        self._clock, self._rand = clock, rand
        self._batch_max, self._batch_bytes = batch_max_events, batch_max_bytes
        self._limit = batch_max_events
        self._base, self._cap = backoff_base_s, backoff_cap_s
        self._attempt = 0
        self._lock = threading.Lock()
        self.sent = self.failed = self.rejected = self.lost = 0
        self.wake = threading.Event()

    def step(self) -> float | None:
        """One attempt. None: the queue is empty; else seconds to wait before the next."""
        rows = self._queue.peek(limit=self._limit, max_bytes=self._batch_bytes)
        if not rows:
            return None
        now = self._clock()
        records = [self._format(row, now) for row in rows]
        try:
            delivery = self._transport.send(records)
        except Exception as exc:  # whatever the network raised, the rows stay queued
            return self._retry(f"{type(exc).__name__}: {exc}", None)
        if delivery.verdict is Verdict.ACCEPTED:
            self._queue.ack([row.id for row in rows])
            with self._lock:
                self.sent += len(rows)
            self._attempt, self._limit = 0, self._batch_max
            return 0.0
        if delivery.verdict is Verdict.REFUSED:
            return self._refused(rows, delivery)
        return self._retry(delivery.detail, delivery.retry_after)

    def _retry(self, detail: str, hint: float | None) -> float:
        with self._lock:
            self.failed += 1
        delay = backoff(self._attempt, rand=self._rand, hint=hint, base=self._base, cap=self._cap)
        self._attempt += 1
        log.warning("forwarding to %s failed (%s); retrying in %.1fs", self.name, detail, delay)
        return delay

    def _refused(self, rows: list[QueuedRow], delivery: Delivery) -> float:
        smaller = split(len(rows))
        if smaller > 0:
            self._limit = smaller  # find the refused row by halving; the rest go through
            return 0.0
        self._queue.ack([rows[0].id])
        with self._lock:
            self.rejected += 1
        log.error(
            "%s refused a %s for good (%s); dropped", self.name, rows[0].kind, delivery.detail
        )
        self._limit = self._batch_max
        return 0.0

    def count_lost(self, count: int) -> None:
        with self._lock:
            self.lost += count

    def run(self, stop: threading.Event) -> None:
        """Loop until `stop` is set; both kinds of wait return at once when it is."""
        while not stop.is_set():
            self.wake.clear()
            try:
                delay = self.step()
            except Exception:
                log.exception("forwarder %s: unexpected error; backing off", self.name)
                delay = self._cap
            if delay is None:
                self.wake.wait(IDLE_POLL_S)
            elif delay > 0:
                stop.wait(delay)
        self._transport.close()

    def metrics(self) -> SinkMetrics:
        stats = self._queue.stats()
        with self._lock:
            sent, failed, rejected, lost = self.sent, self.failed, self.rejected, self.lost
        return SinkMetrics(
            sink=self.name,
            queued=stats.rows,
            queued_bytes=stats.bytes,
            sent=sent,
            failed=failed,
            rejected=rejected,
            dropped=stats.dropped_total,
            lost=lost,
            lag_s=stats.lag_s(self._clock()),
        )
