"""The capture command records a running process as a labelled row with provenance."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.training.capture import main
from agent.training.dataset import read_rows

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "600"])
    yield proc
    proc.kill()
    proc.wait()


def test_capture_writes_rows_that_read_back_with_features(
    sleeper: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    out = tmp_path / "rows.jsonl"
    argv = ["--label", "ordinary", "--program", "sleep", "--category", "shell"]
    argv += ["--pid", str(sleeper.pid), "--samples", "2", "--interval", "0.1", "--pause", "0.1"]
    argv += ["--how", "sleep 600 from pytest", "--out", str(out)]

    assert main(argv) == 0
    rows = list(read_rows(out))

    assert len(rows) == 2
    assert [row.provenance.sample for row in rows] == [0, 1]
    row = rows[0]
    assert (row.label, row.program, row.family) == ("ordinary", "sleep", "shell")
    assert row.provenance.how == "sleep 600 from pytest" and not row.provenance.derived
    assert row.observation.pid == sleeper.pid and row.observation.cmdline == ("sleep", "600")
    assert row.observation.rss is not None and row.observation.cpu_percent is not None
    found = row.features().as_dict()
    assert found["maps.present"] == 1.0 and found["runtime.matched"] == 0.0


def test_capture_of_a_process_that_is_gone_records_nothing(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    argv = ["--label", "ordinary", "--program", "true", "--category", "shell"]
    argv += ["--pid", str(gone.pid), "--samples", "1", "--interval", "0.05"]

    assert main([*argv, "--out", str(tmp_path / "rows.jsonl")]) == 1
