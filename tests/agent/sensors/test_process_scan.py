"""The process sensor's scan loop: deep looks only where something changed, lifecycle events,
permission gaps, probing, and the Linux source against real processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil
import pytest

from agent.sensors.probe import ProbeResult
from agent.sensors.processes import (
    Brief,
    Details,
    LinuxSource,
    ProcessSensor,
    default_source,
)

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
ORT = "/venv/lib/python3.11/site-packages/onnxruntime/capi/onnxruntime_pybind11_state.so"
GGUF = "/home/dev/.ollama/models/blobs/sha256-" + "ab" * 32


@dataclass
class Proc:
    brief: Brief
    details: Details
    libraries: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    opened: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    listeners: list[tuple[str, int]] = field(default_factory=list)
    denied: bool = False


class FakeSource:
    """A process table held in memory; counts the expensive calls the sensor makes."""

    def __init__(self) -> None:
        self.procs: dict[int, Proc] = {}
        self.calls: Counter[str] = Counter()

    def add(self, pid: int, name: str, cmdline: tuple[str, ...], **kw: Any) -> Proc:
        brief = Brief(pid=pid, create_time=1000.0 + pid, name=name, ppid=1, vsize=100)
        proc = Proc(brief, Details(name, f"/usr/bin/{name}", cmdline, "dev"), **kw)
        self.procs[pid] = proc
        return proc

    def briefs(self) -> dict[int, Brief]:
        return {pid: p.brief for pid, p in self.procs.items()}

    def _get(self, pid: int, call: str) -> Proc:
        self.calls[call] += 1
        if pid not in self.procs:
            raise ProcessLookupError(pid)
        if self.procs[pid].denied and call != "details":
            raise PermissionError(pid)
        return self.procs[pid]

    def details(self, pid: int) -> Details:
        return self._get(pid, "details").details

    def mappings(self, pid: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
        proc = self._get(pid, "mappings")
        return proc.libraries, proc.files

    def open_files(self, pid: int) -> tuple[str, ...]:
        return self._get(pid, "open_files").opened

    def environ(self, pid: int, names: Collection[str]) -> dict[str, str]:
        return {k: v for k, v in self._get(pid, "environ").env.items() if k in names}

    def listeners(self) -> dict[int, list[tuple[str, int]]]:
        return {pid: p.listeners for pid, p in self.procs.items() if p.listeners}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def sensor_for(source: FakeSource, clock: Clock | None = None, **kw: Any) -> ProcessSensor:
    clock = clock or Clock()
    return ProcessSensor(source=source, clock=clock, wall=lambda: 10_000.0, **kw)


@pytest.fixture
def source() -> FakeSource:
    fake = FakeSource()
    fake.add(1, "init", ("/sbin/init",))
    fake.add(10, "sleep", ("sleep", "600"))
    fake.add(20, "python3", ("python3", "infer.py"), libraries=(ORT,))
    return fake


def test_only_new_processes_get_a_deep_look(source: FakeSource) -> None:
    sensor = sensor_for(source)
    sensor.scan()
    sensor.scan()
    sensor.scan()

    assert source.calls["details"] == 3
    assert source.calls["mappings"] == 3
    assert sensor.stats.deep_looks == 0 and sensor.stats.processes == 3


def test_a_changed_address_space_of_a_runtime_is_looked_at_again(source: FakeSource) -> None:
    sensor = sensor_for(source)
    sensor.scan()
    proc = source.procs[20]
    proc.brief = replace(proc.brief, vsize=200)
    proc.files = ("/models/extra.onnx",)
    reports = sensor.scan()

    assert source.calls["mappings"] == 4
    assert next(iter(reports.values())).match.models == ("/models/extra.onnx",)


def test_a_young_process_that_loads_a_runtime_later_is_found(source: FakeSource) -> None:
    clock = Clock()
    sensor = sensor_for(source, clock)
    source.add(30, "python3", ("python3", "late.py"))
    source.procs[30].brief = replace(source.procs[30].brief, create_time=9_990.0)  # 10 s old
    assert all(r.observation.pid != 30 for r in sensor.scan().values())
    source.procs[30].libraries = (ORT,)
    source.procs[30].brief = replace(source.procs[30].brief, vsize=500)
    clock.now = 5.0

    assert any(r.observation.pid == 30 for r in sensor.scan().values())


def test_an_old_busy_process_waits_before_another_look(source: FakeSource) -> None:
    clock = Clock()
    sensor = sensor_for(source, clock, relook_max=60.0)
    sensor.scan()
    sleeper = source.procs[10]
    sleeper.brief = replace(sleeper.brief, vsize=999)
    clock.now = 5.0
    sensor.scan()
    assert source.calls["mappings"] == 3
    sleeper.brief = replace(sleeper.brief, vsize=1000)
    clock.now = 61.0
    sensor.scan()
    assert source.calls["mappings"] == 4


def test_lifecycle_started_snapshot_changed_stopped(source: FakeSource) -> None:
    sensor = sensor_for(source)
    first = sensor.poll()
    second = sensor.poll(snapshot=True)
    source.procs[20].listeners = [("127.0.0.1", 8000)]
    third = sensor.poll()
    del source.procs[20]
    fourth = sensor.poll()

    assert [action for action, _ in first] == ["started"]
    assert first[0][1]["ai.runtime.name"] == "onnxruntime"
    assert [action for action, _ in second] == ["snapshot"]
    assert [action for action, _ in third] == ["changed"]
    assert third[0][1]["ai.listen.port"] == 8000
    assert [action for action, _ in fourth] == ["stopped"]
    assert sensor.poll() == []


def test_a_reused_pid_is_another_process(source: FakeSource) -> None:
    sensor = sensor_for(source)
    sensor.poll()
    proc = source.procs[20]
    proc.brief = replace(proc.brief, create_time=5000.0)
    events = sensor.poll()

    assert [action for action, _ in events] == ["stopped", "started"]


def test_exec_into_another_program_is_looked_at_again(source: FakeSource) -> None:
    sensor = sensor_for(source)
    sensor.scan()
    shell = source.procs[10]
    shell.brief = replace(shell.brief, name="ollama")
    shell.details = Details("ollama", "/usr/local/bin/ollama", ("ollama", "serve"), "ollama")
    shell.env = {"OLLAMA_HOST": "0.0.0.0:11434", "HOME": "/usr/share/ollama"}
    reports = sensor.scan()
    report = next(r for r in reports.values() if r.observation.pid == 10)

    assert report.match.name == "ollama"
    assert report.observation.env == {"OLLAMA_HOST": "0.0.0.0:11434"}
    assert report.exposure.reasons == ("OLLAMA_HOST=0.0.0.0:11434 binds beyond loopback",)


def test_gpu_figures_only_for_sampled_processes(source: FakeSource) -> None:
    sensor = sensor_for(source)
    without = sensor.poll()
    with_gpu = sensor.poll(snapshot=True, gpu={20: (1 << 30, 0.5)})

    assert not any(key.startswith("ai.gpu") for key in without[0][1])
    assert with_gpu[0][1]["ai.gpu.memory_bytes"] == 1 << 30
    assert with_gpu[0][1]["ai.gpu.utilization"] == 0.5


def test_unreadable_processes_are_counted_not_fatal(source: FakeSource) -> None:
    source.add(40, "llama-server", ("llama-server", "-m", "/m.gguf"), denied=True)
    sensor = sensor_for(source)
    reports = sensor.scan()
    sensor.scan()

    assert sensor.stats.permission_denied == 1
    assert source.calls["mappings"] == 4  # the denied one is not retried every scan
    assert any(r.match.name == "llama.cpp" for r in reports.values())


def test_a_process_gone_mid_scan_is_skipped(source: FakeSource) -> None:
    class Vanishing(FakeSource):
        def details(self, pid: int) -> Details:
            raise ProcessLookupError(pid)

    vanishing = Vanishing()
    vanishing.procs = source.procs
    sensor = sensor_for(vanishing)

    assert sensor.scan() == {}


def test_a_process_gone_before_its_maps_are_read_is_skipped(source: FakeSource) -> None:
    class GoneMidway(FakeSource):
        def mappings(self, pid: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
            raise FileNotFoundError(f"/proc/{pid}/maps")

    midway = GoneMidway()
    midway.procs = source.procs
    sensor = sensor_for(midway)

    assert sensor.scan() == {} and sensor.stats.processes == 0


@linux_only
def test_a_zombie_is_listed_once_and_left_alone() -> None:
    zombie = subprocess.Popen(["true"])
    while psutil.Process(zombie.pid).status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.01)
    try:
        sensor = ProcessSensor(source=LinuxSource())
        sensor.scan()
        assert all(r.observation.pid != zombie.pid for r in sensor.scan().values())
    finally:
        zombie.wait()


def test_listeners_are_probed_on_loopback_only_and_fold_into_the_report(source: FakeSource) -> None:
    asked: list[tuple[str, str, int]] = []

    def prober(runtime: str, host: str, port: int) -> ProbeResult:
        asked.append((runtime, host, port))
        return ProbeResult(host=host, port=port, version="0.9.1", model_paths=(GGUF,))

    source.add(50, "ollama", ("ollama", "serve"), listeners=[("0.0.0.0", 11434)])
    source.add(60, "llama-server", ("llama-server",), listeners=[("192.168.1.5", 8080)])
    reports = sensor_for(source, prober=prober).scan()
    ollama = next(r for r in reports.values() if r.observation.pid == 50)

    assert asked == [("ollama", "127.0.0.1", 11434)]
    assert ollama.match.version == "0.9.1"
    assert ollama.match.models == (GGUF,)
    assert ollama.fields()["ai.listen.exposed"] is True


def test_default_source_follows_the_os_type() -> None:
    assert type(default_source("linux")).__name__ == "LinuxSource"
    assert type(default_source("windows")).__name__ == "PsutilSource"


# -- the Linux source against real processes -------------------------------------------------


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "OLLAMA_HOST": "127.0.0.1:1", "OPENAI_API_KEY": "sk-" + "x" * 30}
    proc = subprocess.Popen(["sleep", "600"], env=env)
    yield proc
    proc.kill()
    proc.wait()


@linux_only
def test_linux_briefs_agree_with_psutil(sleeper: subprocess.Popen[bytes]) -> None:
    brief = LinuxSource().briefs()[sleeper.pid]
    proc = psutil.Process(sleeper.pid)

    assert brief.name == "sleep" and brief.ppid == os.getpid()
    assert abs(brief.create_time - proc.create_time()) < 0.02
    assert brief.vsize == proc.memory_info().vms


@linux_only
def test_linux_source_reads_maps_fds_environment_and_listeners(
    sleeper: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    source = LinuxSource()
    model = tmp_path / "weights.gguf"
    model.write_bytes(b"GGUF" + bytes(60))
    with model.open("rb"), socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        libraries, _ = source.mappings(os.getpid())
        opened = source.open_files(os.getpid())
        listening = source.listeners().get(os.getpid(), [])

    assert any(".cpython-" in lib or "libpython" in lib for lib in libraries)
    assert str(model) in opened
    assert ("127.0.0.1", port) in listening
    env = source.environ(sleeper.pid, {"OLLAMA_HOST", "OPENAI_API_KEY"})
    assert env["OLLAMA_HOST"] == "127.0.0.1:1"


@linux_only
def test_linux_source_reports_a_vanished_process() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    with pytest.raises(ProcessLookupError):
        LinuxSource().details(proc.pid)
    with pytest.raises(OSError):
        LinuxSource().mappings(proc.pid)


@dataclass(frozen=True)
class FixedScore:
    value: float
    top_features: tuple[str, ...] = ()


class FakeScorer:
    """Scores by process name; counts the batches so that caching shows."""

    threshold = 0.5

    def __init__(self, by_name: dict[str, float]) -> None:
        self.by_name = by_name
        self.batches: list[int] = []

    def __call__(self, items: Any) -> list[FixedScore]:
        self.batches.append(len(items))
        return [FixedScore(self.by_name.get(obs.name, 0.0), ("lib:ggml",)) for obs, _ in items]


def test_a_high_score_without_a_known_runtime_is_still_an_inference_process(
    source: FakeSource,
) -> None:
    source.add(30, "mystery-srv", ("mystery-srv", "--port", "9999"))
    scorer = FakeScorer({"mystery-srv": 0.9, "python3": 0.8})
    reports = sensor_for(source, scorer=scorer).scan()

    by_name = {r.observation.name: r for r in reports.values()}
    assert set(by_name) == {"python3", "mystery-srv"}
    fields = by_name["mystery-srv"].fields()
    assert fields["ai.runtime.name"] == "unknown"
    assert fields["ai.classifier.score"] == 0.9
    assert fields["ai.classifier.top_features"] == ["lib:ggml"]
    assert by_name["python3"].fields()["ai.runtime.name"] == "onnxruntime"


def test_processes_are_scored_in_one_batch_and_only_again_when_they_change(
    source: FakeSource,
) -> None:
    scorer = FakeScorer({})
    sensor = sensor_for(source, scorer=scorer)
    sensor.scan()
    sensor.scan()
    assert scorer.batches[0] == 3
    assert sum(scorer.batches[1:]) <= 1  # the runtime's usage refresh may rescore it alone


def test_a_low_score_keeps_an_ordinary_process_out(source: FakeSource) -> None:
    reports = sensor_for(source, scorer=FakeScorer({"sleep": 0.1})).scan()
    assert {r.observation.name for r in reports.values()} == {"python3"}
