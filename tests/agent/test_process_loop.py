"""The process loop turns sensor polls into events and reads GPUs only for known pids."""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping

from agent.process_loop import GpuUse, ProcessLoop
from agent.sensors.gpu import GpuReading, GpuSample
from agent.sensors.processes import ProcessScanStats

FIELDS = {"event.dataset": "shadowai.inference_process", "process.pid": 42}


class FakeSensor:
    def __init__(self) -> None:
        self.stats = ProcessScanStats(processes=7)
        self._reported: dict[tuple[int, float], Mapping[str, object]] = {}
        self.polls: list[tuple[bool, GpuUse | None]] = []

    @property
    def reported(self) -> Mapping[tuple[int, float], Mapping[str, object]]:
        return self._reported

    def poll(
        self, *, snapshot: bool = False, gpu: GpuUse | None = None
    ) -> list[tuple[str, Mapping[str, object]]]:
        self.polls.append((snapshot, gpu))
        first = not self._reported
        self._reported = {(42, 1.0): FIELDS}
        return [("started", FIELDS)] if first else []


class FakeGpu:
    def __init__(self) -> None:
        self.asked: list[set[int]] = []

    def read(self, pids: Collection[int]) -> GpuReading:
        self.asked.append(set(pids))
        sample = GpuSample(pid=42, memory_bytes=2 << 30, utilization=0.5, device="fake")
        return GpuReading(samples={42: sample}, available=True, permission_gaps=("nvml: x",))


def test_the_first_poll_snapshots_and_reads_no_gpu_before_any_process_is_known() -> None:
    sensor, gpu, emitted = FakeSensor(), FakeGpu(), []
    loop = ProcessLoop(sensor=sensor, gpu=gpu, emit=lambda f, a: emitted.append((a, f)))
    assert loop.poll_once() == 1
    assert emitted == [("started", FIELDS)]
    assert sensor.polls == [(True, None)]
    assert gpu.asked == []


def test_later_polls_carry_gpu_figures_for_known_processes() -> None:
    sensor, gpu = FakeSensor(), FakeGpu()
    loop = ProcessLoop(sensor=sensor, gpu=gpu, emit=lambda f, a: None, clock=lambda: 0.0)
    loop.poll_once()
    loop.poll_once()
    assert gpu.asked == [{42}]
    assert sensor.polls[1] == (False, {42: (2 << 30, 0.5)})
    health = loop.health_fields()
    assert health["agent.health.processes_scanned"] == 7
    assert health["agent.health.gpu_available"] == 1
    assert health["agent.health.gpu_permission_gaps"] == ["nvml: x"]


def test_run_stops_when_asked() -> None:
    stop = threading.Event()
    loop = ProcessLoop(sensor=FakeSensor(), gpu=FakeGpu(), emit=lambda f, a: stop.set())
    loop.run(stop)  # the first poll emits, which sets stop, so run returns
    assert stop.is_set()
