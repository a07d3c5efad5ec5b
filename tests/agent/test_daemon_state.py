"""The state file, the status file `status` reads, the pause gate, the CPU budget and health."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path

from agent.cli import main
from agent.health import SelfUsage, health_event
from agent.inventory import Known
from agent.pause import CpuBudget, Gate, PausePolicy, Readings, excess, reason
from agent.state import STATUS_FILE, StateFile, Status, StatusBoard, read_status, summary
from agent.watchdog.quarantine import QUARANTINE_FILE, Quarantine, save_quarantine


def test_the_ledger_survives_a_restart_and_a_damaged_file_starts_empty(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "inventory.json")
    with state.ledger() as ledger:
        ledger.record("/m/a", Known((1, 2, 3, 4), {"file.path": "/m/a"}))
    state.changed()
    state.save()
    with StateFile(tmp_path / "inventory.json").ledger() as again:
        assert again.get("/m/a") == Known((1, 2, 3, 4), {"file.path": "/m/a"})
    (tmp_path / "inventory.json").write_text("[1, 2")
    with StateFile(tmp_path / "inventory.json").ledger() as empty:
        assert len(empty) == 0


def test_saves_are_throttled_unless_forced(tmp_path: Path) -> None:
    now = [0.0]
    state = StateFile(tmp_path / "s.json", save_every=5.0, clock=lambda: now[0])
    state.changed()
    state.save(force=True)
    with state.ledger() as ledger:
        ledger.record("/m/a", Known((1, 2, 3, 4), {}))
    state.changed()
    now[0] = 1.0
    state.save()
    assert json.loads((tmp_path / "s.json").read_text()) == {}
    now[0] = 6.0
    state.save()
    assert list(json.loads((tmp_path / "s.json").read_text())) == ["/m/a"]


def test_status_says_running_only_with_a_live_pid_and_a_fresh_heartbeat() -> None:
    status = Status(pid=4242, heartbeat_at=100.0, last_error="UNAVAILABLE: down", last_error_at=90)
    alive = summary(status, now=110.0, alive=lambda pid: True, stale=30)
    assert alive["running"] is True and alive["last_error"] == "UNAVAILABLE: down"
    assert summary(status, now=200.0, alive=lambda pid: True, stale=30)["running"] is False
    assert summary(status, now=110.0, alive=lambda pid: False, stale=30)["running"] is False
    assert summary(None, now=0, alive=lambda pid: True, stale=30) == {"running": False}


def test_the_board_records_contact_and_errors_from_the_shippers_counters(tmp_path: Path) -> None:
    now = [1000.0]
    board = StatusBoard(tmp_path / STATUS_FILE, clock=lambda: now[0])
    board.delivery(sent=0, failures=2, last_error="UNAVAILABLE: connection refused")
    now[0] = 1010.0
    board.delivery(sent=5, failures=2, last_error="UNAVAILABLE: connection refused")
    board.beat(paused="battery")
    written = read_status(tmp_path / STATUS_FILE)
    assert written is not None
    assert (written.last_error_at, written.last_contact_at) == (1000.0, 1010.0)
    assert (written.paused, written.pid) == ("battery", os.getpid())
    board.remove()
    assert read_status(tmp_path / STATUS_FILE) is None


def test_the_status_command_shows_the_service_and_the_quarantine(tmp_path: Path) -> None:
    board = StatusBoard(tmp_path / STATUS_FILE)
    board.delivery(sent=3, failures=0, last_error="")
    board.beat()
    quarantine = Quarantine().add("file:/m/evil.pkl", "cpu", now=time.time(), seconds=3600)
    save_quarantine(tmp_path / QUARANTINE_FILE, quarantine.restarted())
    out = io.StringIO()
    assert main(["status", "--data-dir", str(tmp_path)], out=out) == 0
    shown = json.loads(out.getvalue())
    assert shown["service"]["running"] is True  # this very process holds the heartbeat
    assert shown["service"]["last_contact"] is not None
    assert shown["quarantined"] == ["file:/m/evil.pkl"]
    assert shown["watchdog_restarts"] == 1
    assert shown["enrolled"] is False


def test_scanning_pauses_on_battery_and_when_busy_by_configuration() -> None:
    policy = PausePolicy(on_battery=True, busy_percent=80.0)
    assert reason(Readings(on_battery=True, busy_percent=5.0), policy) == "battery"
    assert reason(Readings(on_battery=False, busy_percent=95.0), policy) == "busy"
    assert reason(Readings(on_battery=None, busy_percent=50.0), policy) == ""
    off = PausePolicy(on_battery=False, busy_percent=0.0)
    assert reason(Readings(on_battery=True, busy_percent=100.0), off) == ""


def test_the_gate_holds_until_the_reason_clears_and_opens_on_stop() -> None:
    readings = [Readings(True, 0.0), Readings(True, 0.0), Readings(False, 0.0)]
    stop = threading.Event()
    gate = Gate(PausePolicy(), read=lambda: readings.pop(0), stop=stop, check_every=0.01)
    gate.wait()
    assert readings == [] and gate.paused == ""
    stuck = Gate(PausePolicy(), read=lambda: Readings(True, 0.0), stop=stop, check_every=0.01)
    threading.Timer(0.1, stop.set).start()
    stuck.wait()
    assert stuck.paused == "battery"


def test_the_cpu_budget_waits_off_what_was_spent_beyond_the_share() -> None:
    assert excess(cpu_seconds=1.0, wall_seconds=2.0, share=0.1) == 8.0
    assert excess(cpu_seconds=0.1, wall_seconds=2.0, share=0.1) == 0.0
    cpu, clock = [0.0], [0.0]
    waits: list[float] = []

    class Recorder(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            waits.append(timeout or 0.0)
            clock[0] += timeout or 0.0
            return False

    budget = CpuBudget(
        0.1, stop=Recorder(), cpu=lambda: cpu[0], clock=lambda: clock[0], check_every=1
    )
    cpu[0], clock[0] = 0.5, 1.0
    budget.spend()
    assert waits == [4.0]  # 0.5 CPU-s at 10% needs 5 s of wall time


def test_health_reports_real_cpu_use_and_memory() -> None:
    usage = SelfUsage()
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    sample = usage.sample()
    assert sample["agent.health.cpu_percent"] > 5.0
    assert sample["agent.health.rss_bytes"] > sample.get("agent.health.private_bytes", 0) > 0


def test_a_health_part_that_fails_costs_only_its_own_fields() -> None:
    def broken() -> dict[str, object]:
        raise RuntimeError("boom")

    event = health_event({"a": lambda: {"agent.health.spool_bytes": 3}, "b": broken})
    assert event == {"event.dataset": "shadowai.agent_health", "agent.health.spool_bytes": 3}
