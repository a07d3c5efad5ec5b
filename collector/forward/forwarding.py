"""Wiring: one queue file, transport and forwarder thread per configured sink.

The ingest path calls `submit` after the store committed a batch; `metrics` feeds /metrics;
`close` stops the threads (each wait ends at once) and closes the queues.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from collector.forward.config import ForwardConfig, HecConfig, SyslogConfig
from collector.forward.forwarder import Forwarder, SinkMetrics, Transport
from collector.forward.queue import ForwardQueue, QueuedRow, QueueError
from collector.forward.records import ALERT, EVENT, hec_record, syslog_message
from collector.forward.transport import HecTransport, SyslogTransport

log = logging.getLogger(__name__)

Formatter = Callable[[QueuedRow, float], bytes]
_SYSLOG_READ_BYTES = 4 * 2**20


def hec_formatter(config: HecConfig) -> Formatter:
    def format_row(row: QueuedRow, now_s: float) -> bytes:
        return hec_record(
            row.event,
            kind=row.kind,
            now_s=now_s,
            source=config.source,
            index=config.index,
            max_event_bytes=config.event_max_bytes,
        )

    return format_row


def syslog_formatter(config: SyslogConfig) -> Formatter:
    def format_row(row: QueuedRow, now_s: float) -> bytes:
        return syslog_message(
            row.event,
            kind=row.kind,
            now_s=now_s,
            facility=config.facility,
            app_name=config.app_name,
            structured=config.format == "structured",
            max_bytes=config.message_max_bytes,
        )

    return format_row


class Forwarding:
    def __init__(
        self,
        forwarders: list[Forwarder],
        queues: list[ForwardQueue],
        *,
        kinds: frozenset[str],
        clock: Callable[[], float],
    ) -> None:
        self._forwarders, self._queues = forwarders, queues
        self._kinds, self._clock = kinds, clock
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @classmethod
    def open(
        cls,
        config: ForwardConfig,
        *,
        data_dir: Path,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> Forwarding:
        """Queues in `data_dir` (forward-hec.sqlite3, forward-syslog.sqlite3); not started."""
        sinks: list[tuple[str, Transport, Formatter, int, int]] = []
        if config.hec is not None:
            hec = config.hec
            sinks.append(
                (
                    "hec",
                    HecTransport(hec),
                    hec_formatter(hec),
                    hec.batch_max_events,
                    hec.batch_max_bytes,
                )
            )
        if config.syslog is not None:
            sys_cfg = config.syslog
            # Each framed message is at most message_max_bytes, so batch_max_events bounds
            # a batch's size on the wire; the byte budget only bounds what is read at once.
            sinks.append(
                (
                    "syslog",
                    SyslogTransport(sys_cfg),
                    syslog_formatter(sys_cfg),
                    sys_cfg.batch_max_events,
                    _SYSLOG_READ_BYTES,
                )
            )
        forwarders, queues = [], []
        try:
            for name, transport, formatter, max_events, max_bytes in sinks:
                queue = ForwardQueue.open(
                    data_dir / f"forward-{name}.sqlite3", max_bytes=config.queue_max_bytes
                )
                queues.append(queue)
                forwarders.append(
                    Forwarder(
                        name=name,
                        queue=queue,
                        transport=transport,
                        format_row=formatter,
                        clock=clock,
                        rand=rand,
                        batch_max_events=max_events,
                        batch_max_bytes=max_bytes,
                        backoff_base_s=config.backoff_base_s,
                        backoff_cap_s=config.backoff_cap_s,
                    )
                )
        except BaseException:
            for queue in queues:
                queue.close()
            raise
        return cls(forwarders, queues, kinds=config.kinds, clock=clock)

    def start(self) -> None:
        for forwarder in self._forwarders:
            thread = threading.Thread(
                target=forwarder.run,
                args=(self._stop,),
                name=f"forward-{forwarder.name}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def submit(
        self,
        events: Iterable[Mapping[str, object]] = (),
        alerts: Iterable[Mapping[str, object]] = (),
    ) -> None:
        """Queue a committed batch's flat events and flat alerts for every sink."""
        items: list[tuple[str, Mapping[str, object]]] = []
        if "events" in self._kinds:
            items.extend((EVENT, event) for event in events)
        if "alerts" in self._kinds:
            items.extend((ALERT, alert) for alert in alerts)
        if not items:
            return
        now = self._clock()
        for forwarder, queue in zip(self._forwarders, self._queues, strict=True):
            try:
                queue.append(items, now_s=now)
            except QueueError:
                # The store has committed the batch already: failing the agent's request now
                # would only make it resend what is stored. Count and log the loss instead.
                log.exception("forwarding queue of %s: %d items lost", forwarder.name, len(items))
                forwarder.count_lost(len(items))
            forwarder.wake.set()

    def metrics(self) -> list[SinkMetrics]:
        return [forwarder.metrics() for forwarder in self._forwarders]

    def close(self, timeout: float = 15.0) -> None:
        """Stop the forwarder threads and close the queues; queued rows stay for next time."""
        self._stop.set()
        for forwarder in self._forwarders:
            forwarder.wake.set()
        for thread in self._threads:
            thread.join(timeout)
        for queue in self._queues:
            queue.close()
