"""The macOS source with a runner that answers with recorded `ioreg -a` plists and a footprint
reader that answers with recorded proc_pid_rusage values; ioreg itself never runs here."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from agent.detect.gpu import GpuSample
from agent.sensors.gpu.apple import IOREG_COMMAND, AppleSource

RECORDINGS = Path(__file__).parents[2] / "detect" / "gpu_recordings"
FOOTPRINTS = {1845: 20938940416, 2210: 9126805504}


class RecordedIoreg:
    """Answers ioreg with the recordings in turn, and remembers what it was asked to run."""

    def __init__(self, *names: str) -> None:
        self.outputs = [(RECORDINGS / name).read_bytes() for name in names]
        self.commands: list[Sequence[str]] = []

    def __call__(self, argv: Sequence[str]) -> bytes:
        self.commands.append(argv)
        return self.outputs.pop(0)


def footprint(pid: int) -> int:
    if pid == 412:  # WindowServer belongs to another user
        raise PermissionError(1, "Operation not permitted")
    if pid not in FOOTPRINTS:
        raise ProcessLookupError(3, "No such process")
    return FOOTPRINTS[pid]


def source(*names: str) -> tuple[AppleSource, RecordedIoreg]:
    ioreg = RecordedIoreg(*names)
    clock = itertools.count(0, 5_000_000_000)
    return AppleSource(run=ioreg, footprint=footprint, clock=lambda: next(clock)), ioreg


def test_unified_memory_is_the_footprint_and_utilization_needs_two_readings() -> None:
    apple, ioreg = source("ioreg_m3max_t0.plist", "ioreg_m3max_t5s.plist")
    first = apple.read({1845, 2210, 77})
    assert ioreg.commands == [IOREG_COMMAND]
    assert first.available and first.permission_gaps == ()
    assert first.samples == {
        1845: GpuSample(1845, 20938940416, None, "Apple M3 Max"),
        2210: GpuSample(2210, 9126805504, None, "Apple M3 Max"),
    }
    second = apple.read({1845, 2210, 77})
    assert second.samples[1845].utilization == pytest.approx(0.82)
    assert second.samples[2210].utilization == 0.0


def test_a_process_of_another_user_is_a_permission_gap() -> None:
    reading = source("ioreg_m3max_t0.plist")[0].read({412})
    assert reading.samples == {412: GpuSample(412, None, None, "Apple M3 Max")}
    assert reading.permission_gaps == ("proc_pid_rusage 412: permission denied",)


def test_an_exited_process_has_no_memory_and_no_gap() -> None:
    reading = source("ioreg_m3max_t0.plist")[0].read({3307})
    assert reading.samples[3307].memory_bytes is None and reading.permission_gaps == ()


def test_an_intel_mac_attributes_no_memory_to_processes() -> None:
    reading = source("ioreg_intel_iris.plist")[0].read({733})
    assert reading.samples == {733: GpuSample(733, None, None, "IntelAccelerator")}


def failing(error: Exception) -> AppleSource:
    def run(argv: Sequence[str]) -> bytes:
        raise error

    return AppleSource(run=run, footprint=footprint)


@pytest.mark.parametrize(
    "error",
    [
        FileNotFoundError(2, "No such file or directory: '/usr/sbin/ioreg'"),
        subprocess.CalledProcessError(1, list(IOREG_COMMAND)),
        subprocess.TimeoutExpired(list(IOREG_COMMAND), 10),
    ],
)
def test_without_ioreg_there_is_no_gpu_source(error: Exception) -> None:
    reading = failing(error).read({1845})
    assert (reading.available, reading.samples, reading.permission_gaps) == (False, {}, ())


def test_garbled_ioreg_output_or_no_accelerator_means_not_available() -> None:
    def garbled(argv: Sequence[str]) -> bytes:
        return b"<?xml version='1.0'?><plist><array><dict>"

    def empty(argv: Sequence[str]) -> bytes:
        return b'<?xml version="1.0"?><plist version="1.0"><array/></plist>'

    for run in (garbled, empty):
        assert not AppleSource(run=run, footprint=footprint).read({1}).available
