"""Reading ahead: order kept, the window bounded, stop and close end it, a failing read costs
only its own item; and the file walk's use of it, on real files."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agent.sensors.files import ScanStats, iter_files, observe_file, scan
from agent.sensors.readahead import ahead


class CountingRead:
    """A read that records how far ahead of the caller it was asked, and can be held."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.lock = threading.Lock()
        self.asked: set[int] = set()
        self.fail_on = fail_on
        self.release = threading.Event()
        self.release.set()

    def __call__(self, item: int) -> str:
        self.release.wait()
        with self.lock:
            self.asked.add(item)
        if item == self.fail_on:
            raise RuntimeError("a bug in the read")
        return f"read {item}"


def test_items_come_in_order_each_with_its_read() -> None:
    read = CountingRead()

    got = list(ahead(range(1000), read, threads=3, batch=7, window=4))

    assert got == [(i, f"read {i}") for i in range(1000)]


def test_reads_stay_within_the_window_ahead_of_the_caller() -> None:
    read = CountingRead()
    items = ahead(range(1000), read, threads=2, batch=10, window=3)

    first = next(items)

    assert first == (0, "read 0")
    # The batch handed over, plus at most the window: nothing further is even listed.
    assert max(read.asked) < 10 * 3
    items.close()


def test_a_read_that_raises_costs_only_its_item() -> None:
    read = CountingRead(fail_on=5)

    got = dict(ahead(range(10), read, threads=2, batch=3, window=2))

    assert got[5] is None
    assert all(got[i] == f"read {i}" for i in range(10) if i != 5)


def test_stop_ends_the_iteration_while_a_read_is_held() -> None:
    read = CountingRead()
    read.release.clear()  # every read blocks, as on a dead network share
    stop = threading.Event()
    got: list[tuple[int, str | None]] = []
    worker = threading.Thread(target=lambda: got.extend(ahead(range(100), read, stop=stop)))

    worker.start()
    stop.set()
    worker.join(timeout=5)
    read.release.set()

    assert not worker.is_alive()
    assert got == []


def test_closing_early_leaves_no_reader_thread_behind() -> None:
    read = CountingRead()
    items = ahead(range(10_000), read, threads=4, batch=8, window=2)
    next(items)

    items.close()

    for thread in threading.enumerate():
        if thread.name.startswith("readahead"):
            thread.join(timeout=5)
            assert not thread.is_alive()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_a_file_no_format_claims_is_decided_from_the_head_read_ahead(tmp_path: Path) -> None:
    write(tmp_path / "notes.txt", b"# not a model, just notes\n" * 40)
    stats = ScanStats()

    for path, st in iter_files([tmp_path], stats=stats):
        path.unlink()  # gone before it is looked at: only the bytes read ahead can decide
        assert observe_file(path, st) is None

    assert stats.files_seen == 1 and stats.errors == []


def test_a_claimed_file_is_still_opened_and_read_whole(tmp_path: Path, gguf_model: Path) -> None:
    write(tmp_path / "model.gguf", gguf_model.read_bytes())

    for path, st in iter_files([tmp_path], stats=ScanStats()):
        path.unlink()
        with pytest.raises(FileNotFoundError):
            observe_file(path, st)


def test_a_file_changed_after_its_head_was_read_is_read_again(
    tmp_path: Path, gguf_model: Path
) -> None:
    notes = write(tmp_path / "notes.txt", b"# not a model, just notes\n" * 40)
    stats = ScanStats()

    for path, _ in iter_files([tmp_path], stats=stats):
        # Replaced by a model: the stat the caller now holds is not the one read ahead.
        notes.write_bytes(gguf_model.read_bytes())
        obs = observe_file(path, path.stat(), hash_contents=False)
        assert obs is not None and obs.info.format == "gguf"


def test_the_scan_finds_every_model_among_many_files(tmp_path: Path, gguf_model: Path) -> None:
    weights = gguf_model.read_bytes()
    for i in range(700):  # more than the window ahead, in several folders
        write(tmp_path / f"d{i % 9}" / f"f{i}.py", b"print('hello')\n" * (i % 5 + 2))
        if i % 50 == 0:
            write(tmp_path / f"d{i % 9}" / f"m{i}.bin", weights)
    stats = ScanStats()

    found = sorted(Path(o.path).name for o in scan([tmp_path], hash_contents=False, stats=stats))

    assert found == sorted(f"m{i}.bin" for i in range(0, 700, 50))
    assert stats.files_seen == 714 and stats.errors == []
