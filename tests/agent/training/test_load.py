"""Busy rows under a load are kept only when the load ran throughout and the target's CPU rose
above its own idle baseline; the rows carry that evidence."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import psutil
import pytest

from agent.training.capture import Target, capture, targets
from agent.training.capture import main as capture_main
from agent.training.dataset import Row, read_rows, row_to_json, write_rows
from agent.training.load import LoadError, idle_baseline, load_problem, required_cpu, under_load

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# Reads lines from a FIFO and burns CPU on each: idle until a writer opens the FIFO.
WORKER = "import sys\nfor line in open(sys.argv[1]):\n    sum(i * i for i in range(20000))\n"


def test_every_busy_sample_must_clear_the_bar_above_idle() -> None:
    assert load_problem(0.0, [35.0, 40.0], alive=True) is None
    assert load_problem(2.0, [35.0, 9.0], alive=True) is not None  # one idle sample is enough
    assert load_problem(30.0, [42.0], alive=True) is not None  # below 1.5 x a busy idle
    assert load_problem(30.0, [46.0], alive=True) is None


def test_a_load_that_exited_or_no_sample_is_refused() -> None:
    assert "exited" in str(load_problem(0.0, [90.0], alive=False))
    assert load_problem(0.0, [], alive=True) is not None


def test_the_bar_grows_with_the_baseline() -> None:
    assert required_cpu(0.0) == 10.0
    assert required_cpu(100.0) == 150.0


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    fifo = tmp_path / "work.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(fifo)])
    yield proc, fifo
    proc.kill()
    proc.wait()


def _target(pid: int) -> Target:
    return Target("ordinary", "fifo-worker", "script", "python reading a FIFO", (pid,))


def _take(target: Target) -> Callable[[], list[Row]]:
    return partial(capture, target, samples=2, interval=0.5, pause=0.1, first=2)


def test_rows_under_a_real_load_carry_the_evidence(
    worker: tuple[subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    proc, fifo = worker
    target = _target(proc.pid)
    idle = idle_baseline(lambda: targets(target))
    with subprocess.Popen(["bash", "-c", f"yes > {fifo}"]) as load:
        try:
            rows = under_load(load, idle, _take(target), "yes", warm_up=0.5)
        finally:
            psutil.Process(load.pid).kill()

    assert [row.provenance.sample for row in rows] == [2, 3]
    for row in rows:
        evidence = row.provenance.load
        assert evidence is not None and evidence.alive and evidence.command == "yes"
        assert evidence.cpu_busy >= required_cpu(evidence.cpu_idle)
    out = tmp_path / "rows.jsonl"
    write_rows(out, rows)
    assert [row_to_json(r) for r in read_rows(out)] == [row_to_json(r) for r in rows]


def test_a_load_that_exits_at_once_fails_the_capture(
    worker: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, _ = worker
    target = _target(proc.pid)
    with subprocess.Popen(["true"]) as load, pytest.raises(LoadError, match="exited"):
        under_load(load, 0.0, _take(target), "true", warm_up=0.5)


def test_a_load_that_never_reaches_the_target_fails_the_capture(
    worker: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, _ = worker
    target = _target(proc.pid)
    with subprocess.Popen(["sleep", "30"]) as load:
        try:
            with pytest.raises(LoadError, match="below"):
                under_load(load, 0.0, _take(target), "sleep", warm_up=0.2)
        finally:
            load.kill()


def _argv(pid: int, out: Path) -> list[str]:
    argv = ["--label", "ordinary", "--program", "fifo-worker", "--category", "script"]
    argv += ["--pid", str(pid), "--samples", "2", "--interval", "0.5", "--pause", "0.1"]
    return [*argv, "--how", "python reading a FIFO", "--out", str(out)]


def test_the_capture_command_keeps_rows_taken_under_its_load(
    worker: tuple[subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    proc, fifo = worker
    out = tmp_path / "rows.jsonl"

    assert capture_main([*_argv(proc.pid, out), "--load", f"bash -c 'yes > {fifo}'"]) == 0
    rows = list(read_rows(out))
    assert len(rows) == 2
    assert all(row.provenance.load is not None for row in rows)


def test_the_capture_command_writes_nothing_when_its_load_exits(
    worker: tuple[subprocess.Popen[bytes], Path], tmp_path: Path
) -> None:
    proc, _ = worker
    out = tmp_path / "rows.jsonl"

    assert capture_main([*_argv(proc.pid, out), "--load", "true"]) == 1
    assert not out.exists()
