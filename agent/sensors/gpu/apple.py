"""GPU use per process on macOS: the IOKit accelerator's user clients (`ioreg`) and their GPU
time, and on Apple silicon each process's physical footprint as its share of unified memory."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import subprocess
import time
from collections.abc import Callable, Collection

from agent.detect.gpu import (
    AppleProcessTime,
    GpuSample,
    apple_process_times,
    apple_utilization,
    parse_ioreg_accelerators,
    phys_footprint_from_rusage,
)
from agent.errors import FormatError
from agent.sensors.gpu import GpuReading, Runner, run_command

log = logging.getLogger(__name__)

# Depth 2 from each accelerator: the accelerator (PerformanceStatistics, model) and its
# AGXDeviceUserClient children, whose IOUserClientCreator is "pid 1234, ollama".
IOREG_COMMAND = ("/usr/sbin/ioreg", "-r", "-d", "2", "-w", "0", "-c", "IOAccelerator", "-a")
RUSAGE_INFO_V0 = 0
_RUSAGE_BUFFER = 512  # larger than any rusage_info_vN, so a newer kernel never writes past it

# Physical footprint in bytes; PermissionError for another user's process without root,
# ProcessLookupError once it has exited.
FootprintReader = Callable[[int], int]


class AppleSource:
    """How unified memory is attributed: Apple silicon has no separate GPU memory. Metal buffers
    are charged to the process that allocates them, as "IOAccelerator (graphics)" pages of its
    physical footprint (proc_pid_rusage ri_phys_footprint), beside its CPU memory; only vmmap, far
    too slow for a loop, tells the two apart. So a process holding a GPU user client reports its
    whole footprint as memory_bytes. Model files mapped and wrapped as no-copy Metal buffers
    (llama.cpp's default) are clean file pages outside the footprint; the process sensor reports
    those files. Intel Macs, whose GPU memory is the driver's, get utilization only."""

    def __init__(
        self,
        *,
        run: Runner,
        footprint: FootprintReader,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self._run = run
        self._footprint = footprint
        self._clock = clock
        self._previous: tuple[int, dict[int, AppleProcessTime]] | None = None

    def read(self, pids: Collection[int]) -> GpuReading:
        try:
            accelerators = parse_ioreg_accelerators(self._run(IOREG_COMMAND))
        except (OSError, subprocess.SubprocessError, FormatError) as error:
            log.warning("ioreg: %s; GPU fields will be absent", error)
            return GpuReading({}, available=False)
        if not accelerators:
            return GpuReading({}, available=False)
        now, times = self._clock(), apple_process_times(accelerators)
        previous = self._previous
        self._previous = (now, {pid: t for pid, t in times.items() if pid in pids})
        gaps: list[str] = []
        samples = {}
        for pid in pids:
            if pid in times:
                before = None if previous is None else previous[1].get(pid)
                window = 0 if previous is None else now - previous[0]
                busy = apple_utilization(before, times[pid], window)
                memory = self._memory(pid, gaps) if times[pid].unified else None
                samples[pid] = GpuSample(pid, memory, busy, times[pid].device)
        return GpuReading(samples, available=True, permission_gaps=tuple(gaps))

    def _memory(self, pid: int, gaps: list[str]) -> int | None:
        try:
            return self._footprint(pid)
        except PermissionError:
            gaps.append(f"proc_pid_rusage {pid}: permission denied")
        except (OSError, FormatError) as error:  # exited, or a short buffer
            log.debug("proc_pid_rusage %d: %s", pid, error)
        return None


def libproc_footprint() -> FootprintReader:
    """proc_pid_rusage from libproc (part of libSystem), read through ctypes; macOS only."""
    library = ctypes.CDLL(ctypes.util.find_library("proc") or "libproc.dylib", use_errno=True)
    call = library.proc_pid_rusage
    call.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    call.restype = ctypes.c_int

    def footprint(pid: int) -> int:
        buffer = ctypes.create_string_buffer(_RUSAGE_BUFFER)
        if call(pid, RUSAGE_INFO_V0, buffer) != 0:
            number = ctypes.get_errno()
            raise OSError(number, f"proc_pid_rusage({pid})")  # EPERM -> PermissionError
        return phys_footprint_from_rusage(buffer.raw)

    return footprint


def open_default() -> AppleSource:
    return AppleSource(run=run_command, footprint=libproc_footprint())
