"""The process side of the daemon: poll inference processes and their GPU use on an interval.

The sensor decides what is an inference process and what changed; this loop only keeps time,
reads the GPU source for the processes it knows, and hands events to the daemon.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from agent.sensors.gpu import GpuReading, GpuSource
from agent.sensors.processes import ProcessScanStats

log = logging.getLogger(__name__)

Emit = Callable[[Mapping[str, Any], str], None]  # fields, event.action
GpuUse = dict[int, tuple[int | None, float | None]]


class Sensor(Protocol):
    stats: ProcessScanStats

    @property
    def reported(self) -> Mapping[tuple[int, float], Mapping[str, object]]: ...

    def poll(
        self, *, snapshot: bool = False, gpu: GpuUse | None = None
    ) -> list[tuple[str, Mapping[str, object]]]: ...


class ProcessLoop:
    def __init__(
        self,
        *,
        sensor: Sensor,
        gpu: GpuSource,
        emit: Emit,
        interval: float = 5.0,
        snapshot_interval: float = 6 * 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sensor = sensor
        self._gpu = gpu
        self._emit = emit
        self._interval = interval
        self._snapshot_interval = snapshot_interval
        self._clock = clock
        self._snapshot_at: float | None = None
        self.gpu_reading = GpuReading(samples={}, available=False)

    def poll_once(self, *, snapshot: bool | None = None) -> int:
        """One scan: events for every started, changed and stopped inference process."""
        now = self._clock()
        if snapshot is None:
            due = self._snapshot_at is None or now - self._snapshot_at >= self._snapshot_interval
            snapshot = due
        events = self._sensor.poll(snapshot=snapshot, gpu=self._gpu_use())
        for action, fields in events:
            self._emit(fields, action)
        if snapshot:
            self._snapshot_at = now
        return len(events)

    def request_snapshot(self) -> None:
        """The next poll reports every inference process, whether it changed or not."""
        self._snapshot_at = None

    def _gpu_use(self) -> GpuUse | None:
        """GPU figures for the processes already known to infer; none read when none are."""
        pids = {pid for pid, _ in self._sensor.reported}
        if not pids:
            return None
        try:
            self.gpu_reading = self._gpu.read(pids)
        except Exception:
            # A GPU source that breaks costs the GPU fields, not the process events.
            log.exception("GPU source failed")
            return None
        return {
            pid: (sample.memory_bytes, sample.utilization)
            for pid, sample in self.gpu_reading.samples.items()
        }

    def health_fields(self) -> dict[str, Any]:
        stats = self._sensor.stats
        return {
            "agent.health.processes_scanned": stats.processes,
            "agent.health.gpu_available": int(self.gpu_reading.available),
            "agent.health.gpu_permission_gaps": list(self.gpu_reading.permission_gaps[:20]),
        }

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            started = self._clock()
            self.poll_once()
            stop.wait(max(0.0, self._interval - (self._clock() - started)))
