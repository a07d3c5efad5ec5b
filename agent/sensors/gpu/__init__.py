"""GPU and unified-memory use per process: the reading every GPU source returns, and the choice of
sources for this OS (NVML and DRM fdinfo on Linux, IOKit on macOS, PDH on Windows), made once.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from agent.detect.gpu import GpuSample, merge_samples

__all__ = [
    "CombinedSource",
    "GpuReading",
    "GpuSample",
    "GpuSource",
    "NoGpu",
    "Runner",
    "default_source",
    "run_command",
]

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 10.0

# Runs a fixed command and returns its stdout; raises OSError or CalledProcessError.
Runner = Callable[[Sequence[str]], bytes]


@dataclass(frozen=True)
class GpuReading:
    samples: dict[int, GpuSample]  # by pid; a pid without a sample has no GPU fields at all
    available: bool  # False: no GPU source on this machine -> fields absent, never zero
    permission_gaps: tuple[str, ...] = ()  # "nvml: NVML_ERROR_NO_PERMISSION", "/proc/1/fd: ..."


class GpuSource(Protocol):
    def read(self, pids: Collection[int]) -> GpuReading: ...


class NoGpu:
    """No GPU source on this machine: every reading says so and carries no samples."""

    def read(self, pids: Collection[int]) -> GpuReading:
        return GpuReading({}, available=False)


class CombinedSource:
    """Several sources on one machine (an NVIDIA card beside an Intel iGPU): one reading."""

    def __init__(self, sources: Sequence[GpuSource]) -> None:
        self.sources = tuple(sources)

    def read(self, pids: Collection[int]) -> GpuReading:
        readings = [source.read(pids) for source in self.sources]
        samples: dict[int, GpuSample] = {}
        for reading in readings:
            for pid, sample in reading.samples.items():
                samples[pid] = merge_samples(samples[pid], sample) if pid in samples else sample
        gaps = tuple(gap for reading in readings for gap in reading.permission_gaps)
        return GpuReading(samples, any(r.available for r in readings), gaps)


def run_command(argv: Sequence[str]) -> bytes:
    """The production runner for ioreg and typeperf: stdout, or OSError / CalledProcessError."""
    # Fixed argument lists from this package, never a shell.
    done = subprocess.run(list(argv), capture_output=True, timeout=COMMAND_TIMEOUT_S, check=True)
    return done.stdout


def default_source(os_type: str | None = None) -> GpuSource:
    """The GPU sources of this OS, probed once: call at start-up and keep the result."""
    if os_type is None:
        from agent.platform import current

        os_type = current().os_type
    sources: list[GpuSource] = []
    if os_type == "linux":
        from agent.sensors.gpu.drm import open_default as open_drm
        from agent.sensors.gpu.nvml import open_default as open_nvml

        sources += [s for s in (open_nvml(), open_drm()) if s is not None]
    elif os_type == "macos":
        from agent.sensors.gpu.apple import open_default as open_apple

        sources.append(open_apple())
    elif os_type == "windows":
        from agent.sensors.gpu.windows import open_default as open_pdh

        sources.append(open_pdh())
    if not sources:
        log.info("no GPU source on this machine; GPU fields will be absent")
        return NoGpu()
    return sources[0] if len(sources) == 1 else CombinedSource(sources)
