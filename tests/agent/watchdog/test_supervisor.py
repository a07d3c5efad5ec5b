"""The supervisor with real worker processes: a runaway is killed, its task set aside, and a
worker that ends by itself is not restarted."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from agent.watchdog.breadcrumb import BREADCRUMB_FILE
from agent.watchdog.policy import MB, Limits
from agent.watchdog.quarantine import QUARANTINE_FILE, load_quarantine
from agent.watchdog.supervisor import Supervisor

RUNAWAY = """
import sys
from pathlib import Path
from agent.watchdog.breadcrumb import Breadcrumb
crumb = Breadcrumb(Path(sys.argv[1]))
crumb.set("file:/models/evil.pkl")
while True:
    pass
"""

HOG = """
import sys, time
from pathlib import Path
from agent.watchdog.breadcrumb import Breadcrumb
crumb = Breadcrumb(Path(sys.argv[1]))
crumb.set("file:/models/huge.onnx")
hog = bytearray(80 * 2**20)
for i in range(0, len(hog), 4096):
    hog[i] = 1
time.sleep(60)
"""


def _supervise(tmp_path: Path, program: str, limits: Limits) -> tuple[Supervisor, float]:
    stop = threading.Event()
    command = [sys.executable, "-c", program, str(tmp_path / BREADCRUMB_FILE)]
    supervisor = Supervisor(
        command=command, limits=limits, data_dir=tmp_path, stop=stop, interval=0.2
    )
    threading.Timer(30.0, stop.set).start()  # a safety net only; the test stops sooner
    started = time.monotonic()
    done = threading.Event()

    def watch() -> None:
        while not supervisor.trips and not stop.is_set():
            time.sleep(0.05)
        stop.set()
        done.set()

    threading.Thread(target=watch).start()
    assert supervisor.run() == 0
    done.wait(5)
    return supervisor, time.monotonic() - started


def test_a_runaway_worker_is_killed_and_its_file_quarantined(tmp_path: Path) -> None:
    limits = Limits(cpu_share=0.10, window=2.0, memory_bytes=500 * MB)
    supervisor, _ = _supervise(tmp_path, RUNAWAY, limits)
    assert [t.reason for t in supervisor.trips][:1] == ["cpu"]
    assert supervisor.trips[0].task == "file:/models/evil.pkl"
    quarantine = load_quarantine(tmp_path / QUARANTINE_FILE)
    assert quarantine.active(time.time()) == ["file:/models/evil.pkl"]
    assert quarantine.restarts >= 1


def test_a_worker_over_its_memory_is_restarted(tmp_path: Path) -> None:
    limits = Limits(cpu_share=4.0, window=60.0, memory_bytes=60 * MB)
    supervisor, _ = _supervise(tmp_path, HOG, limits)
    assert supervisor.trips[0].reason == "memory"
    assert supervisor.trips[0].task == "file:/models/huge.onnx"


def test_a_worker_that_ends_by_itself_ends_the_supervisor(tmp_path: Path) -> None:
    for status in (0, 2):
        supervisor = Supervisor(
            command=[sys.executable, "-c", f"raise SystemExit({status})"],
            limits=Limits(),
            data_dir=tmp_path,
            stop=threading.Event(),
            interval=0.1,
        )
        assert supervisor.run() == status
        assert supervisor.trips == []
