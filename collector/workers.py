"""Worker processes of `serve --workers N`: start them, restart those that die (with
backoff), stop them all. The policy is pure functions; `Supervisor` is the thin shell."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO

from collector.errors import CollectorError

log = logging.getLogger(__name__)

READY = b"ready"  # a worker's only line on its stdout, a pipe to the parent
HEALTHY_AFTER = 30.0  # a worker that ran this long before dying starts a fresh backoff
POLL = 0.2


def worker_count(requested: int, cpus: int, platform: str) -> int:
    """Processes to run: `requested`, or one per usable CPU for 0.

    More than one needs Linux: the processes share the gRPC ports through SO_REUSEPORT,
    which only Linux spreads over them (elsewhere one listener takes every connection).
    """
    if requested < 0:
        raise CollectorError(f"--workers {requested}: a count, or 0 for one per CPU")
    count = requested or max(1, cpus)
    if count > 1 and not platform.startswith("linux"):
        raise CollectorError(f"--workers {requested}: more than one process needs Linux")
    return count


def failures_after(previous: int, ran_for: float, healthy_after: float = HEALTHY_AFTER) -> int:
    """Deaths in a row after this one: a worker that ran `healthy_after` seconds counts 1."""
    return 1 if ran_for >= healthy_after else previous + 1


def restart_delay(failures: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Seconds before restarting a worker after `failures` deaths in a row (1 = the first)."""
    return min(cap, base * 2.0 ** max(0, failures - 1))


def usable_cpus() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


class Process:
    """One worker process: stdin is its lifeline (EOF: stop), stdout says when it is ready."""

    def __init__(self, command: Sequence[str]) -> None:
        # A session of its own: a terminal's Ctrl-C reaches the parent alone, which then
        # stops the workers in order. A parent that dies anyhow closes the stdin pipe.
        self.popen = subprocess.Popen(
            list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
        )
        self.started = time.monotonic()  # for the backoff: how long it ran before dying
        self.ready = threading.Event()
        assert self.popen.stdout is not None
        threading.Thread(
            target=self._read, args=(self.popen.stdout,), name="worker-out", daemon=True
        ).start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _read(self, out: IO[bytes]) -> None:
        for line in out:  # until the worker exits; anything but READY is ignored
            if line.strip() == READY:
                self.ready.set()
        out.close()

    def release(self) -> None:
        """Close the lifeline: the worker stops its listeners and exits."""
        if self.popen.stdin is not None and not self.popen.stdin.closed:
            with contextlib.suppress(OSError):  # the worker is gone already: broken pipe
                self.popen.stdin.close()


@dataclass
class Slot:
    process: Process
    failures: int = 0
    restart_at: float | None = None  # monotonic time of the next start, after a death


@dataclass
class Supervisor:
    """Keeps `count` workers running `command` until `stop()`."""

    command: Sequence[str]
    count: int
    slots: list[Slot] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def start(self, ready_within: float = 60.0) -> None:
        """Start every worker and wait until each listens; CollectorError if one cannot."""
        self.slots = [Slot(Process(self.command)) for _ in range(self.count)]
        deadline = time.monotonic() + ready_within
        for number, slot in enumerate(self.slots, start=1):
            while not slot.process.ready.wait(POLL):
                status = slot.process.popen.poll()
                if status is not None or time.monotonic() > deadline:
                    self.stop()
                    why = "timed out" if status is None else f"exited with status {status}"
                    raise CollectorError(f"worker {number} of {self.count} {why} before serving")
        log.info("%d worker processes serving: pids %s", self.count, self.pids())
        self._thread = threading.Thread(target=self._watch, name="workers", daemon=True)
        self._thread.start()

    def pids(self) -> list[int]:
        with self._lock:
            return [slot.process.pid for slot in self.slots]

    def _watch(self) -> None:
        while not self._stop.wait(POLL):
            for number, slot in enumerate(self.slots, start=1):
                try:
                    self._tend(number, slot)
                except OSError:  # cannot start a process now: try again at the next step
                    log.exception("worker %d: restart failed", number)
                    slot.failures += 1
                    slot.restart_at = time.monotonic() + restart_delay(slot.failures)

    def _tend(self, number: int, slot: Slot) -> None:
        now = time.monotonic()
        process = slot.process
        if slot.restart_at is None:
            status = process.popen.poll()
            if status is None:
                return
            process.release()
            slot.failures = failures_after(slot.failures, now - process.started)
            slot.restart_at = now + restart_delay(slot.failures)
            delay = slot.restart_at - now
            log.warning(
                "worker %d (pid %d) exited with status %s; restarting in %.1f s",
                number,
                process.pid,
                status,
                delay,
            )
        elif now >= slot.restart_at and not self._stop.is_set():
            fresh = Process(self.command)
            with self._lock:
                slot.process, slot.restart_at = fresh, None
            log.info("worker %d restarted: pid %d", number, fresh.pid)

    def stop(self, grace: float = 5.0) -> None:
        """Ask every worker to stop (lifeline closed), wait `grace` seconds, then kill."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(grace)
        processes = [slot.process for slot in self.slots]
        for process in processes:
            process.release()
        deadline = time.monotonic() + grace
        for process in processes:
            try:
                process.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop within %.0f s: killed", process.pid, grace)
                process.popen.kill()
                process.popen.wait()


def watch_parent(gone: threading.Event, stdin: int = 0) -> None:
    """In a worker: set `gone` once the parent closes our stdin or dies (EOF either way)."""

    def read() -> None:
        try:
            while os.read(stdin, 4096):
                pass
        except OSError:  # stdin closed under us: the same answer
            pass
        gone.set()

    threading.Thread(target=read, name="parent-watch", daemon=True).start()


def worker_ready() -> None:
    """In a worker: tell the parent the listeners are up."""
    sys.stdout.buffer.write(READY + b"\n")
    sys.stdout.buffer.flush()
