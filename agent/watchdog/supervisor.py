"""The supervisor process: run the worker, sample its CPU and memory, and restart it with
backoff when it overspends, setting aside the task it was on (read from its breadcrumb).

Decisions are agent.watchdog.policy's; this module spawns, samples, kills and waits.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agent.watchdog.breadcrumb import BREADCRUMB_FILE, read_breadcrumb
from agent.watchdog.policy import Limits, Sample, backoff, trim, verdict
from agent.watchdog.quarantine import QUARANTINE_FILE, load_quarantine, save_quarantine

log = logging.getLogger(__name__)

EXIT_USAGE = 2  # the worker's "cannot run" (a config error): restarting would not help
STEADY_RUNS = 3  # windows a worker must live for its restarts-in-a-row count to reset


class Worker(Protocol):
    pid: int

    def poll(self) -> int | None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...


Probe = Callable[[int], Callable[[], Sample]]  # pid -> a sampler bound to that process


def psutil_probe(pid: int) -> Callable[[], Sample]:
    import psutil

    proc = psutil.Process(pid)

    def sample() -> Sample:
        times = proc.cpu_times()
        try:
            memory = proc.memory_full_info().uss
        except psutil.AccessDenied:
            memory = proc.memory_info().rss
        return Sample(time.monotonic(), times.user + times.system, memory)

    return sample


@dataclass
class Trip:
    reason: str  # cpu, memory
    task: str | None
    at: float  # monotonic, when the verdict came


class Supervisor:
    def __init__(
        self,
        *,
        command: Sequence[str],
        limits: Limits,
        data_dir: Path,
        stop: threading.Event,
        spawn: Callable[[Sequence[str]], Worker] = subprocess.Popen,
        probe: Probe = psutil_probe,
        interval: float = 2.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._command = list(command)
        self._limits = limits
        self._data_dir = data_dir
        self._stop = stop
        self._spawn = spawn
        self._probe = probe
        self._interval = interval
        self._wall = wall
        self.trips: list[Trip] = []

    def run(self) -> int:
        """Run workers until one exits by itself with success or usage error, or `stop`."""
        in_a_row = 0
        while not self._stop.is_set():
            started = time.monotonic()
            worker = self._spawn(self._command)
            outcome = self._watch(worker)
            if outcome is None:  # stopped: let the worker finish its own shutdown
                return self._shut_down(worker)
            if isinstance(outcome, int):
                if outcome in (0, EXIT_USAGE):
                    return outcome
                log.warning("worker exited with status %d; restarting", outcome)
            else:
                self._set_aside(worker, outcome)
            lived = time.monotonic() - started
            in_a_row = 1 if lived > STEADY_RUNS * self._limits.window else in_a_row + 1
            self._stop.wait(backoff(in_a_row, self._limits))
        return 0

    def _watch(self, worker: Worker) -> Trip | int | None:
        """Sample until the worker exits (its status), overspends (a Trip) or stop (None)."""
        try:
            sample = self._probe(worker.pid)
        except Exception as exc:  # gone already: its exit status tells why
            log.warning("cannot watch worker %d: %s", worker.pid, exc)
            return worker.wait()
        samples: list[Sample] = []
        while not self._stop.wait(self._interval):
            status = worker.poll()
            if status is not None:
                return status
            try:
                samples.append(sample())
            except Exception:
                continue  # exited between poll and sample; the next poll says so
            trim(samples, self._limits)
            reason = verdict(samples, self._limits)
            if reason is not None:
                return Trip(
                    reason, read_breadcrumb(self._data_dir / BREADCRUMB_FILE), samples[-1].at
                )
        return None

    def _set_aside(self, worker: Worker, trip: Trip) -> None:
        worker.kill()
        worker.wait()
        self.trips.append(trip)
        path = self._data_dir / QUARANTINE_FILE
        quarantine = load_quarantine(path).restarted()
        if trip.task:
            quarantine = quarantine.add(
                trip.task, trip.reason, now=self._wall(), seconds=self._limits.quarantine_seconds
            )
        save_quarantine(path, quarantine)
        log.warning(
            "worker over its %s limit; restarted, task set aside: %s", trip.reason, trip.task
        )

    def _shut_down(self, worker: Worker, grace: float = 20.0) -> int:
        if worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(grace)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        return 0
