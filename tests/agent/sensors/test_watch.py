"""The watcher: settled paths only, what was created, changed, moved or deleted, never what
lies under an exclude, and stores that appear after it started."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from watchdog.events import FileClosedNoWriteEvent, FileOpenedEvent

from agent.sensors.watch import WATCHED_EVENTS, Settle, Watcher

DEADLINE = 15.0


class Stats:
    """A stat function over a dict, so that the settling rules are tested without a disk."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[int, int]] = {}

    def __call__(self, path: str) -> tuple[int, int] | None:
        return self.files.get(path)


def test_a_path_is_due_once_it_held_still_for_the_quiet_time() -> None:
    stats, settle = Stats(), Settle(quiet=1.0)
    stats.files["/m/a.gguf"] = (100, 1)
    settle.touch("/m/a.gguf")
    assert settle.due(0.0, stats) == []
    assert settle.due(0.5, stats) == []
    assert settle.due(1.0, stats) == ["/m/a.gguf"]
    assert len(settle) == 0


def test_a_growing_file_waits_until_it_stops_growing() -> None:
    stats, settle = Stats(), Settle(quiet=1.0)
    stats.files["/m/a.gguf"] = (100, 1)
    settle.touch("/m/a.gguf")
    settle.due(0.0, stats)
    stats.files["/m/a.gguf"] = (200, 2)
    assert settle.due(1.0, stats) == []
    assert settle.due(1.5, stats) == []
    assert settle.due(2.0, stats) == ["/m/a.gguf"]


def test_news_about_a_path_restarts_its_wait() -> None:
    stats, settle = Stats(), Settle(quiet=1.0)
    stats.files["/m/a.gguf"] = (100, 1)
    settle.touch("/m/a.gguf")
    settle.due(0.0, stats)
    settle.touch("/m/a.gguf")
    assert settle.due(1.0, stats) == []
    assert settle.due(2.0, stats) == ["/m/a.gguf"]


def test_a_vanished_path_is_due_at_once() -> None:
    settle = Settle(quiet=1.0)
    settle.touch("/m/gone.gguf")
    assert settle.due(0.0, Stats()) == ["/m/gone.gguf"]


def test_too_many_pending_paths_ask_for_a_full_scan() -> None:
    settle = Settle(quiet=1.0, max_pending=3)
    for i in range(4):
        settle.touch(f"/m/{i}")
    assert settle.overflowed and len(settle) == 0


def test_opens_and_reads_are_not_watched() -> None:
    assert FileOpenedEvent not in WATCHED_EVENTS
    assert FileClosedNoWriteEvent not in WATCHED_EVENTS


class Running:
    """A real watcher on a real directory, its batches collected."""

    def __init__(self, roots: list[Path], **options: object) -> None:
        self.batches: list[list[str]] = []
        self.overflows = 0
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self.watcher = Watcher(
            roots,
            on_paths=self._collect,
            stop=self.stop,
            settle=0.2,
            on_overflow=self._overflow,
            **options,  # type: ignore[arg-type]
        )
        self.thread = threading.Thread(target=self.watcher.run)

    def _collect(self, paths: list[str]) -> None:
        with self._lock:
            self.batches.append(paths)

    def _overflow(self) -> None:
        self.overflows += 1

    def seen(self) -> set[str]:
        with self._lock:
            return {p for batch in self.batches for p in batch}

    def wait_for(self, check: Callable[[set[str]], bool]) -> set[str]:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            if check(self.seen()):
                return self.seen()
            self.stop.wait(0.05)
        raise AssertionError(f"not seen within {DEADLINE} s; saw {sorted(self.seen())}")


@pytest.fixture
def watch(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(roots: list[Path] | None = None, **options: object) -> Running:
        running = Running(roots or [tmp_path], **options)
        running.thread.start()
        started.append(running)
        assert running.watcher.ready.wait(DEADLINE)
        return running

    yield start
    for running in started:
        running.stop.set()
        running.thread.join()


def test_a_model_written_into_a_watched_folder_is_reported(
    tmp_path: Path, watch: Callable[..., Running], small_gguf: Path
) -> None:
    running = watch()
    (tmp_path / "sub").mkdir()
    target = tmp_path / "sub" / "llama.gguf"
    target.write_bytes(small_gguf.read_bytes())
    running.wait_for(lambda seen: str(target) in seen)


def test_a_deletion_is_reported(tmp_path: Path, watch: Callable[..., Running]) -> None:
    doomed = tmp_path / "old.gguf"
    doomed.write_bytes(b"GGUF" * 100)
    running = watch()
    doomed.unlink()
    running.wait_for(lambda seen: str(doomed) in seen)


def test_a_move_reports_both_ends(tmp_path: Path, watch: Callable[..., Running]) -> None:
    source = tmp_path / "a.gguf.part"
    source.write_bytes(b"GGUF" * 100)
    running = watch()
    source.rename(tmp_path / "a.gguf")
    running.wait_for(lambda seen: {str(source), str(tmp_path / "a.gguf")} <= seen)


def test_a_directory_moved_in_is_reported_as_a_directory(
    tmp_path: Path, watch: Callable[..., Running]
) -> None:
    outside = tmp_path / "outside"
    inside = tmp_path / "inside"
    outside.mkdir()
    inside.mkdir()
    (outside / "model").mkdir()
    (outside / "model" / "w.gguf").write_bytes(b"GGUF" * 10)
    running = watch([inside])
    os.rename(outside / "model", inside / "model")
    running.wait_for(lambda seen: str(inside / "model") in seen)


def test_excluded_paths_are_not_reported(tmp_path: Path, watch: Callable[..., Running]) -> None:
    (tmp_path / ".git" / "objects").mkdir(parents=True)
    running = watch(excludes=[".git"])
    (tmp_path / ".git" / "objects" / "pack.gguf").write_bytes(b"GGUF" * 10)
    (tmp_path / "kept.gguf").write_bytes(b"GGUF" * 10)
    seen = running.wait_for(lambda seen: str(tmp_path / "kept.gguf") in seen)
    assert not [p for p in seen if ".git" in p]


def test_a_store_that_appears_later_is_watched_and_read(
    tmp_path: Path, watch: Callable[..., Running]
) -> None:
    present, later = tmp_path / "present", tmp_path / "later"
    present.mkdir()
    running = watch([present, later], retry_seconds=0.1)
    later.mkdir()
    (later / "early.gguf").write_bytes(b"GGUF" * 10)
    running.wait_for(lambda seen: str(later) in seen or str(later / "early.gguf") in seen)
    (later / "new.gguf").write_bytes(b"GGUF" * 10)
    running.wait_for(lambda seen: str(later / "new.gguf") in seen)
    assert str(later) in running.watcher.watching


def test_stop_ends_the_watcher(tmp_path: Path) -> None:
    running = Running([tmp_path])
    running.thread.start()
    running.stop.set()
    running.thread.join(timeout=DEADLINE)
    assert not running.thread.is_alive()
