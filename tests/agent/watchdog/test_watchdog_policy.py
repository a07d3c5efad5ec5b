"""The watchdog's decisions: sustained CPU over a window, memory at once, backoff, quarantine."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.watchdog.breadcrumb import SIZE, Breadcrumb, read_breadcrumb
from agent.watchdog.policy import MB, Limits, Sample, backoff, trim, verdict
from agent.watchdog.quarantine import Quarantine, load_quarantine, save_quarantine

LIMITS = Limits(cpu_share=0.10, window=60.0, memory_bytes=200 * MB)


def _samples(share: float, seconds: int, memory: int = 50 * MB) -> list[Sample]:
    return [Sample(float(t), share * t, memory) for t in range(0, seconds + 1, 2)]


def test_a_burst_within_the_windows_budget_is_forgiven() -> None:
    samples = [*_samples(0.0, 40), Sample(42.0, 5.0, 50 * MB)]  # 5 CPU-s of a 6 CPU-s budget
    assert verdict(samples, LIMITS) is None


def test_a_runaway_trips_once_it_has_spent_the_windows_budget() -> None:
    runaway = [Sample(float(t), float(t), 50 * MB) for t in range(0, 8)]  # a whole core
    assert verdict(runaway[:6], LIMITS) is None  # 5 CPU-s so far
    assert verdict(runaway, LIMITS) == "cpu"  # 7 CPU-s: the 60 s average is lost already


def test_sustained_cpu_above_the_share_trips() -> None:
    assert verdict(_samples(0.5, 90), LIMITS) == "cpu"


def test_cpu_at_the_share_does_not_trip() -> None:
    assert verdict(_samples(0.09, 300), LIMITS) is None


def test_memory_over_the_limit_trips_at_once() -> None:
    assert verdict([Sample(0.0, 0.0, 201 * MB)], LIMITS) == "memory"


def test_trimming_keeps_enough_to_judge_the_window() -> None:
    samples = _samples(0.5, 300)
    trim(samples, LIMITS)
    assert samples[0].at <= samples[-1].at - LIMITS.window
    assert samples[1].at > samples[-1].at - LIMITS.window
    assert verdict(samples, LIMITS) == "cpu"


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff(n, LIMITS) for n in range(5)] == [0.0, 5.0, 10.0, 20.0, 40.0]
    assert backoff(30, LIMITS) == LIMITS.backoff_max


def test_a_quarantined_task_expires_after_its_day() -> None:
    q = Quarantine().add("file:/m/evil.pkl", "cpu", now=1000.0, seconds=86400)
    assert q.active(1000.0 + 86399) == ["file:/m/evil.pkl"]
    assert q.paths(1000.0) == ["/m/evil.pkl"]
    assert q.active(1000.0 + 86401) == []
    later = q.add("file:/m/other", "memory", now=1000.0 + 90000, seconds=86400)
    assert list(later.until) == ["file:/m/other"]  # expired entries leave the file


def test_the_quarantine_file_round_trips_and_survives_damage(tmp_path: Path) -> None:
    path = tmp_path / "quarantine.json"
    q = Quarantine().add("file:/a", "cpu", now=0.0, seconds=10).restarted()
    save_quarantine(path, q)
    assert load_quarantine(path) == q
    path.write_text("{not json")
    assert load_quarantine(path) == Quarantine()


def test_the_breadcrumb_says_the_task_until_cleared(tmp_path: Path) -> None:
    path = tmp_path / "current-task"
    crumb = Breadcrumb(path)
    assert read_breadcrumb(path) is None
    crumb.set("file:/home/a/model.gguf")
    assert read_breadcrumb(path) == "file:/home/a/model.gguf"
    crumb.set("file:/b")  # a shorter task replaces a longer one whole
    assert read_breadcrumb(path) == "file:/b"
    crumb.clear()
    assert read_breadcrumb(path) is None
    crumb.close()


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=50)
@given(data=st.binary(max_size=SIZE + 10))
def test_any_breadcrumb_bytes_read_as_a_task_or_none(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("crumb") / "current-task"
    path.write_bytes(data)
    task = read_breadcrumb(path)
    assert task is None or len(task.encode("utf-8", "surrogateescape")) <= SIZE
