"""Whether scanning should wait: on battery, or while the machine is busy (pure decision),
and the gate the scanning threads wait at (thin, the readings injected)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Readings:
    on_battery: bool | None  # None: no battery, or unknown
    busy_percent: float | None  # whole-machine CPU use, 0-100 (all cores)


@dataclass(frozen=True)
class PausePolicy:
    on_battery: bool = True
    busy_percent: float = 0.0  # 0: never pause for load


def reason(readings: Readings, policy: PausePolicy) -> str:
    """Why scanning waits ("battery", "busy"), or "" to go on."""
    if policy.on_battery and readings.on_battery:
        return "battery"
    busy = readings.busy_percent
    if policy.busy_percent > 0 and busy is not None and busy >= policy.busy_percent:
        return "busy"
    return ""


def psutil_readings() -> Readings:
    import psutil

    battery = None
    try:
        sensor = psutil.sensors_battery()
    except (AttributeError, OSError, RuntimeError):  # not on every platform
        sensor = None
    if sensor is not None:
        battery = not sensor.power_plugged if sensor.power_plugged is not None else None
    return Readings(on_battery=battery, busy_percent=psutil.cpu_percent(interval=None))


class Gate:
    """Scanning threads call `wait` between files; it blocks while a pause reason holds.

    Readings are taken at most every `check_every` seconds, so a call per file costs a
    clock read.
    """

    def __init__(
        self,
        policy: PausePolicy,
        *,
        read: Callable[[], Readings] = psutil_readings,
        stop: threading.Event,
        check_every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policy = policy
        self._read = read
        self._stop = stop
        self._check_every = check_every
        self._clock = clock
        self._checked_at: float | None = None
        self.paused = ""

    def _check(self) -> str:
        now = self._clock()
        if self._checked_at is None or now - self._checked_at >= self._check_every:
            self._checked_at = now
            try:
                self.paused = reason(self._read(), self._policy)
            except Exception:  # a sensor that breaks must not stop scanning for good
                self.paused = ""
        return self.paused

    def open(self) -> None:
        """Never wait again: a one-shot run was asked for now, whatever the battery says."""
        self._policy = PausePolicy(on_battery=False, busy_percent=0.0)
        self.paused = ""

    def wait(self) -> None:
        """Return at once when nothing holds scanning; else when it clears or on stop."""
        while self._check() and not self._stop.is_set():
            self._stop.wait(self._check_every)


class CpuBudget:
    """Keep the whole process under a share of one core by waiting between files.

    Called often (before each file); every `check_every` calls it compares the process's CPU
    time with the wall clock since the window began and waits off any excess, so a long
    scan runs at its share rather than tripping the watchdog.
    """

    def __init__(
        self,
        share: float,
        *,
        stop: threading.Event,
        cpu: Callable[[], float] = time.process_time,
        clock: Callable[[], float] = time.monotonic,
        window: float = 10.0,
        check_every: int = 16,
    ) -> None:
        self._share = share
        self._stop = stop
        self._cpu = cpu
        self._clock = clock
        self._window = window
        self._check_every = check_every
        self._calls = 0
        self._start = (clock(), cpu())
        self.waited = 0.0

    def spend(self) -> None:
        self._calls += 1
        if self._calls % self._check_every:
            return
        now, used = self._clock(), self._cpu()
        start_at, start_cpu = self._start
        wait = excess(used - start_cpu, now - start_at, self._share)
        if wait > 0:
            self.waited += wait
            self._stop.wait(wait)
            now = self._clock()
        if now - start_at >= self._window:
            self._start = (now, self._cpu())


def excess(cpu_seconds: float, wall_seconds: float, share: float) -> float:
    """Seconds to wait so that cpu_seconds spread over the wall time is at most `share`."""
    if share <= 0:
        return 0.0
    return max(0.0, cpu_seconds / share - wall_seconds)
