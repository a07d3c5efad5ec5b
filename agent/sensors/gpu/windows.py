"""GPU memory and engine use per process on Windows from the PDH counters every WDDM driver feeds
(GPU Process Memory, GPU Engine), whatever the vendor: the numbers Task Manager shows. The values
come through an injected reader; production runs `typeperf -sc 1`."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Collection, Iterable

from agent.detect.gpu import parse_typeperf_csv, pdh_samples
from agent.errors import FormatError
from agent.sensors.gpu import GpuReading, Runner, run_command

log = logging.getLogger(__name__)

COUNTERS = (
    r"\GPU Process Memory(*)\Dedicated Usage",
    r"\GPU Process Memory(*)\Shared Usage",
    r"\GPU Engine(*)\Utilization Percentage",
)
# One sample: typeperf takes two collections a second apart so the rate counter has a value.
TYPEPERF_COMMAND = ("typeperf", *COUNTERS, "-sc", "1")

# Counter path -> value (None where the instance had no value), as win32pdh or typeperf give them.
CounterReader = Callable[[], Iterable[tuple[str, float | None]]]


def typeperf_reader(run: Runner) -> CounterReader:
    def read() -> list[tuple[str, float | None]]:
        return parse_typeperf_csv(run(TYPEPERF_COMMAND))

    return read


class PdhSource:
    def __init__(self, *, read_counters: CounterReader) -> None:
        self._read_counters = read_counters

    def read(self, pids: Collection[int]) -> GpuReading:
        try:
            values = self._read_counters()
            samples, problems = pdh_samples(values)
        except (OSError, subprocess.SubprocessError, FormatError) as error:
            # typeperf exits non-zero with "No valid counters" where no WDDM GPU driver is loaded.
            log.warning("PDH GPU counters: %s; GPU fields will be absent", error)
            return GpuReading({}, available=False)
        for problem in problems[:3]:
            log.warning("PDH GPU counters: %s", problem)
        return GpuReading({pid: s for pid, s in samples.items() if pid in pids}, available=True)


def open_default() -> PdhSource:
    return PdhSource(read_counters=typeperf_reader(run_command))
