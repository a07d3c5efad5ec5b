"""The fleet simulator against a real collector process: nothing lost, nothing twice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.e2e.delivery_kit import Restartable


def _simulate(tmp_path: Path, database: str, agents: int, *options: str) -> dict[str, Any]:
    """bench.fleet against a collector process on `database`; its JSON line, once it passed."""
    collector = Restartable(tmp_path / "collector", database)
    token = collector.cli("tokens", "create", "--uses", str(agents))
    collector.start()
    try:
        cmd = [sys.executable, "-m", "bench.fleet", "--collector", collector.grpc]
        cmd += ["--token", token, "--agents", str(agents), "--database", database, *options]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    finally:
        collector.stop()
    assert run.returncode == 0, run.stderr[-2000:]
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def test_a_small_fleet_loses_nothing_and_bad_envelopes_are_refused(
    tmp_path: Path, database: str
) -> None:
    result = _simulate(
        tmp_path,
        database,
        6,
        *("--duration", "5", "--speedup", "100", "--boot-storm", "1"),
        *("--outage-at", "2", "--outage-for", "1", "--bad-share", "0.05"),
    )
    assert result["agents"] == 6
    assert result["lost"] == 0 and result["duplicates"] == 0
    assert result["pending"] == 0 and result["stored"] == result["acked"] > 6 * 4
    assert result["bad_sent"] > 0 and result["bad_wrong"] == []
    assert result["good_refused"] == 0 and result["refused"] == result["bad_sent"]
    assert result["replays_not_duplicate"] == 0


def test_a_warm_fleet_delivers_its_boot_before_the_clock_and_then_only_its_cadence(
    tmp_path: Path, database: str
) -> None:
    result = _simulate(tmp_path, database, 4, "--duration", "3", "--speedup", "60", "--warm")
    assert result["lost"] == 0 and result["duplicates"] == 0 and result["pending"] == 0
    assert result["warm_events"] >= 4 * 5  # 3+ models, a process and health each
    assert result["boot_p99_ms"] == 0.0  # no boot inside the clock
    assert result["all_booted_s"] == 0.0 and result["steady_events"] == result["acked"] > 0
    assert result["stored"] == result["warm_events"] + result["acked"]
