"""Process sensor cost: one full scan (every process looked at deeply) and the steady-state
loop at a 5-second interval, with 300 extra `sleep` processes running.

CPU is this process's user + system time (time.process_time), so the kernel's work reading
/proc on our behalf counts. Run alone: `python -m bench.processes`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from agent.sensors.processes import LinuxSource, ProcessSensor, PsutilSource, default_source

SLEEPERS = 300
INTERVAL = 5.0
STEADY_SCANS = 12
TARGET_PERCENT = 1.0


@contextmanager
def sleepers(count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = [subprocess.Popen(["sleep", "3600"]) for _ in range(count)]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def full_scan(sensor: ProcessSensor) -> tuple[float, float, int]:
    """(wall ms, CPU ms, processes) of one scan where every process is new."""
    wall, cpu = time.perf_counter(), time.process_time()
    sensor.scan()
    return (
        (time.perf_counter() - wall) * 1000,
        (time.process_time() - cpu) * 1000,
        sensor.stats.processes,
    )


def steady_state(sensor: ProcessSensor, scans: int, interval: float) -> tuple[float, float]:
    """(CPU percent of one core, mean CPU ms per scan) over `scans` polls `interval` apart."""
    sensor.poll()
    wall, cpu = time.monotonic(), time.process_time()
    for _ in range(scans):
        time.sleep(interval)
        sensor.poll()
    spent = time.process_time() - cpu
    return 100.0 * spent / (time.monotonic() - wall), spent * 1000 / scans


def run(scans: int = STEADY_SCANS, interval: float = INTERVAL) -> Iterator[str]:
    if not sys.platform.startswith("linux"):
        source = default_source("macos" if sys.platform == "darwin" else "windows")
        wall, cpu, count = full_scan(ProcessSensor(source=source))
        yield f"processes: full scan {wall:.0f} ms wall for {count} processes (psutil source)"
        return
    with sleepers(SLEEPERS):
        for label, make in (("/proc", LinuxSource), ("psutil", PsutilSource)):
            sensor = ProcessSensor(source=make(), ignore_pids=(os.getpid(),))
            wall, cpu, count = full_scan(sensor)
            yield (
                f"processes [{label}]: full scan of {count} processes: {wall:.0f} ms wall, "
                f"{cpu:.0f} ms CPU, {wall / count:.3f} ms per process, "
                f"{count / (wall / 1000):.0f} processes/s"
            )
            percent, per_scan = steady_state(sensor, scans, interval)
            verdict = "ok" if percent < TARGET_PERCENT else "OVER TARGET"
            yield (
                f"processes [{label}]: steady state every {interval:.0f} s with {count} processes: "
                f"{percent:.3f}% of one core ({per_scan:.1f} ms CPU per scan; "
                f"target < {TARGET_PERCENT}%: {verdict}); {sensor.stats.runtimes} runtimes seen"
            )


def main() -> int:
    for line in run():
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
