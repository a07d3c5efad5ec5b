"""The Windows PDH source with recorded counter values: `typeperf -sc 1` output through the
production typeperf reader, and a win32pdh-style mapping through an injected reader."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from agent.sensors.gpu.windows import TYPEPERF_COMMAND, PdhSource, typeperf_reader

RECORDINGS = Path(__file__).parents[2] / "detect" / "gpu_recordings"


def typeperf_output() -> bytes:
    lines = (RECORDINGS / "typeperf_gpu.csv").read_bytes().splitlines(keepends=True)
    while lines and lines[0].startswith(b"#"):
        lines.pop(0)
    return b"".join(lines)


def test_typeperf_counters_become_samples_for_the_pids_asked() -> None:
    asked: list[Sequence[str]] = []

    def run(argv: Sequence[str]) -> bytes:
        asked.append(argv)
        return typeperf_output()

    reading = PdhSource(read_counters=typeperf_reader(run)).read({4312, 7741, 12})
    assert asked == [TYPEPERF_COMMAND]
    assert TYPEPERF_COMMAND[-2:] == ("-sc", "1")
    assert reading.available and reading.permission_gaps == ()
    assert set(reading.samples) == {4312}
    assert reading.samples[4312].memory_bytes == 5704253440 + 98304000 + 1048576
    assert reading.samples[4312].utilization == pytest.approx(0.61228391)


def test_win32pdh_values_through_an_injected_reader() -> None:
    recorded = json.loads((RECORDINGS / "pdh_win32pdh_radeon780m.json").read_text())
    source = PdhSource(read_counters=lambda: recorded["counters"].items())
    sample = source.read({6120}).samples[6120]
    assert (sample.memory_bytes, sample.device) == (8556380160, "luid 0x00000000_0x0000C2B1 phys 0")


@pytest.mark.parametrize(
    "output",
    [
        subprocess.CalledProcessError(
            0xC0000BB8, list(TYPEPERF_COMMAND), b"Error: No valid counters."
        ),
        FileNotFoundError(2, "typeperf"),
        b"\r\nError: No valid counters.\r\n",
    ],
)
def test_without_gpu_counters_there_is_no_gpu_source(output: Exception | bytes) -> None:
    def run(argv: Sequence[str]) -> bytes:
        if isinstance(output, bytes):
            return output
        raise output

    reading = PdhSource(read_counters=typeperf_reader(run)).read({4312})
    assert (reading.available, reading.samples) == (False, {})
