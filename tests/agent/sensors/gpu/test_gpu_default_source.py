"""The per-OS choice of GPU sources, on this machine (no GPU, no NVIDIA library, no /dev/dri),
and how readings of several sources combine."""

from __future__ import annotations

import os
import sys
from collections.abc import Collection

from agent.detect.gpu import GpuSample
from agent.sensors.gpu import CombinedSource, GpuReading, NoGpu, default_source, run_command


def test_this_machine_has_no_gpu_source_and_says_so() -> None:
    source = default_source()
    reading = source.read({os.getpid(), 1})
    assert reading == GpuReading({}, available=False, permission_gaps=())
    assert isinstance(default_source("linux"), NoGpu)


def test_an_os_without_a_gpu_reader_gets_no_gpu() -> None:
    assert default_source("freebsd").read({1}).available is False


class Fixed:
    def __init__(self, reading: GpuReading) -> None:
        self.reading = reading

    def read(self, pids: Collection[int]) -> GpuReading:
        return self.reading


def test_several_sources_merge_per_pid_and_keep_every_gap() -> None:
    nvidia = Fixed(
        GpuReading({7: GpuSample(7, 1000, 0.5, "NVIDIA GeForce RTX 4090")}, True, ("nvml: x",))
    )
    intel = Fixed(
        GpuReading({7: GpuSample(7, 24, 0.1, "i915 0000:00:02.0")}, True, ("/proc/9/fd",))
    )
    absent = Fixed(GpuReading({}, False))
    reading = CombinedSource([nvidia, intel, absent]).read({7})
    assert reading == GpuReading(
        {7: GpuSample(7, 1024, 0.5, "NVIDIA GeForce RTX 4090, i915 0000:00:02.0")},
        True,
        ("nvml: x", "/proc/9/fd"),
    )
    assert CombinedSource([absent]).read({7}).available is False


def test_the_command_runner_returns_stdout() -> None:
    assert run_command([sys.executable, "-c", "print('ioreg')"]) == b"ioreg\n"
