"""The file sensor on real trees: links, loops, unreadable paths, FIFOs, hashing and its throttle.

Tests run as root here, and root reads mode-000 directories, so errors come from paths that
cannot be read by anyone: dangling symlinks, symlink loops, paths removed mid-scan.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import threading
from pathlib import Path

import pytest

from agent.detect.model import fingerprint, model_file_fields
from agent.sensors.files import (
    MAX_ERRORS,
    ScanStats,
    iter_files,
    observe_file,
    scan,
    sha256_file,
)


@pytest.fixture
def gguf_bytes(gguf_model: Path) -> bytes:
    return gguf_model.read_bytes()


@pytest.fixture
def safetensors_bytes(safetensors_model: Path) -> bytes:
    return safetensors_model.read_bytes()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_scan_finds_models_by_content_not_by_name(
    tmp_path: Path, gguf_bytes: bytes, safetensors_bytes: bytes
) -> None:
    write(tmp_path / "notes.txt", gguf_bytes)
    write(tmp_path / "sub" / "weights.bin", safetensors_bytes)
    write(tmp_path / "readme.md", b"# not a model\n" * 10)
    write(tmp_path / "config.json", b'{"model_type": "llama", "hidden_size": 4096}')
    write(tmp_path / "tiny.gguf", b"GGUF")
    stats = ScanStats()

    found = {Path(o.path).name: o for o in scan([tmp_path], stats=stats)}

    assert {name: o.info.format for name, o in found.items()} == {
        "notes.txt": "gguf",
        "weights.bin": "safetensors",
    }
    assert (stats.files_seen, stats.models_found, stats.errors) == (5, 2, [])
    notes = found["notes.txt"]
    assert notes.sha256 == hashlib.sha256(gguf_bytes).hexdigest()
    assert notes.fingerprint == fingerprint(gguf_bytes[: 1 << 20], len(gguf_bytes))
    assert notes.size == len(gguf_bytes)
    assert notes.inode == (tmp_path / "notes.txt").stat().st_ino


def test_observation_becomes_model_file_fields(tmp_path: Path, gguf_bytes: bytes) -> None:
    path = write(tmp_path / "m.gguf", gguf_bytes)

    obs = observe_file(path, path.stat(), hash_contents=False)

    assert obs is not None and obs.sha256 is None
    fields = model_file_fields(obs)
    assert fields["file.path"] == str(path)
    assert fields["ai.model.architecture"] == "llama"
    assert "file.hash.sha256" not in fields


def test_hardlinked_model_is_reported_once(tmp_path: Path, gguf_bytes: bytes) -> None:
    first = write(tmp_path / "a" / "model.gguf", gguf_bytes)
    (tmp_path / "b").mkdir()
    os.link(first, tmp_path / "b" / "same.gguf")

    assert len(list(scan([tmp_path], hash_contents=False))) == 1


def test_symlink_to_a_model_inside_the_tree_is_reported_once(
    tmp_path: Path, gguf_bytes: bytes
) -> None:
    write(tmp_path / "blobs" / "abc123", gguf_bytes)
    link = tmp_path / "snapshots" / "main" / "model.gguf"
    link.parent.mkdir(parents=True)
    link.symlink_to(Path("..") / ".." / "blobs" / "abc123")

    assert len(list(scan([tmp_path], hash_contents=False))) == 1
    # Whichever way the walk meets them first, the pair still counts once.
    assert len(list(scan([link.parent, tmp_path], hash_contents=False))) == 1
    assert len(list(scan([tmp_path / "blobs", link.parent], hash_contents=False))) == 1


def test_two_symlinks_to_one_model_outside_the_root_report_it_once(
    tmp_path: Path, gguf_bytes: bytes
) -> None:
    target = write(tmp_path / "elsewhere" / "model.gguf", gguf_bytes)
    root = tmp_path / "root"
    root.mkdir()
    (root / "one.gguf").symlink_to(target)
    (root / "two.gguf").symlink_to(target)

    found = list(scan([root], hash_contents=False))

    assert len(found) == 1 and Path(found[0].path).parent == root


def test_symlink_loops_end_and_are_reported(tmp_path: Path, gguf_bytes: bytes) -> None:
    write(tmp_path / "d" / "model.gguf", gguf_bytes)
    (tmp_path / "d" / "up").symlink_to("..")
    (tmp_path / "self").symlink_to("self")
    stats = ScanStats()

    found = list(scan([tmp_path], hash_contents=False, stats=stats))

    assert len(found) == 1
    assert len(stats.errors) == 1 and stats.errors[0].startswith(str(tmp_path / "self"))


def test_dangling_symlink_is_recorded_and_the_scan_goes_on(
    tmp_path: Path, gguf_bytes: bytes
) -> None:
    (tmp_path / "gone.gguf").symlink_to(tmp_path / "never-existed")
    write(tmp_path / "model.gguf", gguf_bytes)
    stats = ScanStats()

    found = list(scan([tmp_path], hash_contents=False, stats=stats))

    assert len(found) == 1
    assert stats.errors == [f"{tmp_path / 'gone.gguf'}: No such file or directory"]
    assert stats.permission_errors == 0


def test_root_removed_during_the_scan_is_recorded(tmp_path: Path, gguf_bytes: bytes) -> None:
    write(tmp_path / "first" / "model.gguf", gguf_bytes)
    second = write(tmp_path / "second" / "model.gguf", gguf_bytes).parent
    stats = ScanStats()

    walk = scan([tmp_path / "first", second], hash_contents=False, stats=stats)
    assert next(walk).path == str(tmp_path / "first" / "model.gguf")
    shutil.rmtree(second)

    assert list(walk) == []
    assert stats.errors == [f"{second}: No such file or directory"]


def test_errors_kept_are_bounded_and_all_are_counted(tmp_path: Path) -> None:
    for i in range(MAX_ERRORS + 50):
        (tmp_path / f"dangling{i}").symlink_to(tmp_path / "missing")
    stats = ScanStats()

    assert list(iter_files([tmp_path], stats=stats)) == []
    assert (len(stats.errors), stats.error_count) == (MAX_ERRORS, MAX_ERRORS + 50)


def test_permission_errors_are_counted_apart() -> None:
    stats = ScanStats()

    stats.record_error("/home/u/private", PermissionError(13, "Permission denied"))
    stats.record_error("/home/u/gone", FileNotFoundError(2, "No such file or directory"))

    assert (stats.permission_errors, stats.error_count) == (1, 2)
    assert stats.errors[0] == "/home/u/private: Permission denied"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads mode 000")
def test_unreadable_directory_is_counted(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    stats = ScanStats()
    try:
        list(iter_files([tmp_path], stats=stats))
    finally:
        locked.chmod(0o700)

    assert stats.permission_errors == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_fifos_are_never_opened(tmp_path: Path, gguf_bytes: bytes) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "pipe-link.gguf").symlink_to(tmp_path / "pipe")
    model = write(tmp_path / "model.gguf", gguf_bytes)
    stats = ScanStats()

    found = list(scan([tmp_path], hash_contents=False, stats=stats))

    assert len(found) == 1 and stats.files_seen == 1
    # A model listed, then replaced by a FIFO before it is opened, is no model.
    assert observe_file(tmp_path / "pipe", model.stat()) is None
    with pytest.raises(OSError, match="not a regular file"):
        sha256_file(tmp_path / "pipe")


def test_root_that_is_a_file_is_scanned(tmp_path: Path, gguf_bytes: bytes) -> None:
    path = write(tmp_path / "model.gguf", gguf_bytes)

    found = list(scan([path], hash_contents=False))

    assert [o.path for o in found] == [str(path)]


def test_excludes_match_names_and_paths(tmp_path: Path, gguf_bytes: bytes) -> None:
    write(tmp_path / "keep" / "model.gguf", gguf_bytes)
    write(tmp_path / "node_modules" / "model.gguf", gguf_bytes + b"x")
    write(tmp_path / "cache" / "tmp" / "model.gguf", gguf_bytes + b"y")
    write(tmp_path / "keep" / "model.gguf.part", gguf_bytes + b"z")
    excludes = ["node_modules", f"{tmp_path}/cache/*", "*.part"]

    found = list(scan([tmp_path], excludes=excludes, hash_contents=False))

    assert [o.path for o in found] == [str(tmp_path / "keep" / "model.gguf")]


def test_broken_model_is_recorded_with_where_and_why(tmp_path: Path) -> None:
    broken = write(tmp_path / "broken.gguf", b"GGUF" + struct.pack("<I", 3) + b"\xff" * 64)
    stats = ScanStats()

    assert list(scan([tmp_path], stats=stats)) == []
    assert len(stats.errors) == 1
    assert stats.errors[0].startswith(f"{broken}: gguf: at byte 8:")


def test_stop_before_the_scan_yields_nothing(tmp_path: Path, gguf_bytes: bytes) -> None:
    write(tmp_path / "model.gguf", gguf_bytes)
    stop = threading.Event()
    stop.set()

    assert list(scan([tmp_path], stop=stop)) == []


@pytest.fixture
def big_file(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom((3 << 20) + 17)
    return write(tmp_path / "big.bin", data), data


@pytest.mark.parametrize("chunk", [1 << 20, 4096, 1000])
def test_sha256_file_equals_hashlib_on_the_whole_content(
    big_file: tuple[Path, bytes], chunk: int
) -> None:
    path, data = big_file

    assert sha256_file(path, chunk=chunk) == hashlib.sha256(data).hexdigest()


def test_sha256_file_with_a_generous_rate_limit_finishes(big_file: tuple[Path, bytes]) -> None:
    path, data = big_file

    digest = sha256_file(path, bytes_per_second=1 << 40, stop=threading.Event())

    assert digest == hashlib.sha256(data).hexdigest()


def test_sha256_file_returns_none_when_already_stopped(big_file: tuple[Path, bytes]) -> None:
    stop = threading.Event()
    stop.set()

    assert sha256_file(big_file[0], stop=stop) is None


def test_throttled_hash_is_interrupted_by_stop(big_file: tuple[Path, bytes]) -> None:
    # At one byte per second the first chunk buys a wait of about twelve days; only the
    # stop event can end it, so the result cannot depend on timing.
    stop = threading.Event()
    result: list[str | None] = []
    worker = threading.Thread(
        target=lambda: result.append(sha256_file(big_file[0], stop=stop, bytes_per_second=1))
    )
    worker.start()
    stop.set()
    worker.join()

    assert result == [None]


def test_observe_file_skips_small_and_non_model_files(tmp_path: Path) -> None:
    small = write(tmp_path / "small", b"GGUF\x03\x00\x00\x00")
    text = write(tmp_path / "text", b"hello world, this is not a model\n")

    assert observe_file(small, small.stat()) is None
    assert observe_file(text, text.stat()) is None
