"""The worker policy of `serve --workers N` on values, and the Supervisor on small real
processes that behave as workers do (say ready, stop at the end of stdin)."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from collector.errors import CollectorError
from collector.fdlimit import soft_target
from collector.workers import (
    Supervisor,
    failures_after,
    restart_delay,
    worker_count,
)

WORKER = (
    "import os, sys\nsys.stdout.write('ready\\n'); sys.stdout.flush()\nwhile os.read(0, 9): pass"
)


def test_zero_workers_means_one_per_cpu() -> None:
    assert worker_count(0, 4, "linux") == 4
    assert worker_count(0, 0, "linux") == 1
    assert worker_count(3, 4, "linux") == 3


def test_more_than_one_process_needs_linux() -> None:
    assert worker_count(1, 8, "darwin") == 1
    assert worker_count(0, 1, "win32") == 1
    with pytest.raises(CollectorError, match="needs Linux"):
        worker_count(2, 8, "darwin")


def test_a_negative_worker_count_is_refused() -> None:
    with pytest.raises(CollectorError, match="--workers -1"):
        worker_count(-1, 4, "linux")


def test_restart_delay_doubles_up_to_a_cap() -> None:
    assert [restart_delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert restart_delay(20) == 30.0
    assert restart_delay(0) == 0.5


def test_a_worker_that_ran_long_enough_starts_the_backoff_afresh() -> None:
    assert failures_after(0, ran_for=1.0) == 1
    assert failures_after(3, ran_for=1.0) == 4
    assert failures_after(6, ran_for=30.0) == 1


def test_the_soft_open_file_limit_goes_up_to_the_hard_one() -> None:
    infinity = -1
    assert soft_target(1024, 524288, infinity) == 524288
    assert soft_target(1024, infinity, infinity) == 1_048_576
    assert soft_target(infinity, infinity, infinity) == infinity
    assert soft_target(4096, 1024, infinity) == 4096  # never lowered


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_killed_worker_is_restarted_and_stop_ends_them_all_through_their_stdin() -> None:
    supervisor = Supervisor(_python(WORKER), 2)
    supervisor.start(ready_within=20)
    try:
        first = supervisor.pids()
        os.kill(first[0], signal.SIGKILL)
        deadline = time.monotonic() + 20
        while supervisor.pids()[0] == first[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert supervisor.pids()[0] != first[0]
        assert supervisor.pids()[1] == first[1]
        restarted = supervisor.slots[0].process
        assert restarted.ready.wait(20)
    finally:
        supervisor.stop()
    # Each ended on the end of its stdin (status 0), none had to be killed.
    assert [slot.process.popen.returncode for slot in supervisor.slots] == [0, 0]


def test_a_worker_that_fails_at_start_fails_the_start() -> None:
    with pytest.raises(CollectorError, match="worker 1 of 1 exited with status 3"):
        Supervisor(_python("raise SystemExit(3)"), 1).start(ready_within=20)


def test_a_worker_that_never_gets_ready_fails_the_start_and_is_stopped() -> None:
    silent = "import os\nwhile os.read(0, 9): pass"
    supervisor = Supervisor(_python(silent), 1)
    with pytest.raises(CollectorError, match="timed out"):
        supervisor.start(ready_within=0.5)
    assert supervisor.slots[0].process.popen.returncode == 0
