"""Lowering a thread's priority: the steps run on the calling thread, a refusal is a note,
and on Linux the real calls leave the thread at nice 19 and the idle IO class."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from agent.sensors.priority import LOWEST_NICE, Lowered, PriorityCalls, for_os, lower_current_thread


def test_every_step_gets_the_calling_thread_id() -> None:
    calls: list[tuple[str, int]] = []
    fake = PriorityCalls(
        steps=[
            ("cpu", lambda tid: calls.append(("cpu", tid))),
            ("io", lambda tid: calls.append(("io", tid))),
        ],
        thread_id=lambda: 4242,
    )
    result = lower_current_thread(fake)
    assert calls == [("cpu", 4242), ("io", 4242)]
    assert (result.done, result.failed) == (["cpu", "io"], {})


def test_a_refused_step_is_reported_and_the_rest_still_run() -> None:
    def refuse(tid: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    done: list[int] = []
    result = lower_current_thread(
        PriorityCalls(steps=[("cpu", refuse), ("io", done.append)], thread_id=lambda: 7)
    )
    assert done == [7]
    assert result.done == ["io"]
    assert "Operation not permitted" in result.failed["cpu"]


def test_each_os_has_its_own_steps() -> None:
    assert [name for name, _ in for_os("linux").steps] == ["cpu", "io"]
    assert [name for name, _ in for_os("macos").steps] == ["cpu+io"]
    assert [name for name, _ in for_os("windows").steps] == ["cpu+io"]
    assert list(for_os("plan9").steps) == []


def _task_nice(tid: int) -> int:
    stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])  # field 19, counting from the pid


@pytest.mark.skipif(sys.platform != "linux", reason="the Linux calls")
def test_the_real_linux_calls_lower_only_the_calling_thread() -> None:
    psutil = pytest.importorskip("psutil")
    seen: dict[str, object] = {}

    def worker() -> None:
        result: Lowered = lower_current_thread(for_os("linux"))
        seen["result"] = result
        seen["nice"] = _task_nice(result.thread_id)
        seen["ionice"] = psutil.Process(result.thread_id).ionice().ioclass

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    result = seen["result"]
    assert isinstance(result, Lowered)
    assert result.done == ["cpu", "io"], result.failed
    assert seen["nice"] == LOWEST_NICE
    assert seen["ionice"] == psutil.IOPRIO_CLASS_IDLE
    assert _task_nice(threading.get_native_id()) != LOWEST_NICE  # this thread kept its own
