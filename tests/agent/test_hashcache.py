"""The hash cache: survives a restart, trusts a digest only for the same stat, shares hardlinks,
stays within its bound, and shrugs off a damaged database."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from agent.hashcache import CachingHasher, HashCache
from agent.inventory import StatKey
from agent.sensors.files import sha256_file, stat_key


class CountingHash:
    """The real sha256_file, counting the files it reads in full."""

    def __init__(self) -> None:
        self.paths: list[Path] = []

    def __call__(self, path: Path, **options: Any) -> str | None:
        self.paths.append(path)
        return sha256_file(path, **options)


def model(tmp_path: Path, name: str = "m.gguf", data: bytes = b"GGUF" + b"\x01" * 5000) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_digest_survives_closing_and_reopening(tmp_path: Path) -> None:
    cache = HashCache.open(tmp_path / "hashes.db")
    cache.put((1, 2, 3, 4), "ab" * 32, "cd" * 32)
    cache.close()
    again = HashCache.open(tmp_path / "hashes.db")
    found = again.get((1, 2, 3, 4))
    assert found is not None and (found.sha256, found.fingerprint) == ("ab" * 32, "cd" * 32)
    assert len(again) == 1
    again.close()


def test_a_changed_size_or_mtime_is_a_miss(tmp_path: Path) -> None:
    cache = HashCache.open(tmp_path / "hashes.db")
    cache.put((1, 2, 3, 4), "ab" * 32)
    assert cache.get((1, 2, 3, 5)) is None
    assert cache.get((1, 2, 4, 4)) is None
    cache.put((1, 2, 3, 5), "ef" * 32)  # the same inode rewritten replaces its entry
    assert len(cache) == 1
    assert cache.get((1, 2, 3, 4)) is None
    cache.close()


def test_an_unchanged_file_is_hashed_once_across_restarts(tmp_path: Path) -> None:
    path = model(tmp_path)
    key = stat_key(path.stat())
    counting = CountingHash()
    first = CachingHasher(HashCache.open(tmp_path / "hashes.db"), hash_file=counting)
    digest = first(str(path), key)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert first(str(path), key) == digest

    restarted = CachingHasher(HashCache.open(tmp_path / "hashes.db"), hash_file=counting)
    assert restarted(str(path), key) == digest
    assert counting.paths == [path]
    assert (restarted.hashed, restarted.hits) == (0, 1)


def test_a_new_mtime_means_hashing_again(tmp_path: Path) -> None:
    path = model(tmp_path)
    counting = CountingHash()
    hasher = CachingHasher(HashCache.open(tmp_path / "hashes.db"), hash_file=counting)
    hasher(str(path), stat_key(path.stat()))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    hasher(str(path), stat_key(path.stat()))
    assert counting.paths == [path, path]


def test_hardlinks_share_one_entry(tmp_path: Path) -> None:
    path = model(tmp_path)
    link = tmp_path / "copy.gguf"
    os.link(path, link)
    counting = CountingHash()
    cache = HashCache.open(tmp_path / "hashes.db")
    hasher = CachingHasher(cache, hash_file=counting)
    assert hasher(str(path), stat_key(path.stat())) == hasher(str(link), stat_key(link.stat()))
    assert counting.paths == [path]
    assert len(cache) == 1


def test_a_file_that_changed_since_its_stat_gives_no_digest(tmp_path: Path) -> None:
    path = model(tmp_path)
    stale: StatKey = stat_key(path.stat())
    path.write_bytes(b"GGUF" + b"\x02" * 6000)
    cache = HashCache.open(tmp_path / "hashes.db")
    assert CachingHasher(cache)(str(path), stale) is None
    assert len(cache) == 0


def test_the_cache_keeps_the_entries_seen_most_recently(tmp_path: Path) -> None:
    cache = HashCache.open(tmp_path / "hashes.db", max_entries=10)
    for inode in range(10):
        cache.put((1, inode, 1, 1), f"{inode:064x}")
    assert cache.get((1, 0, 1, 1)) is not None  # reading an entry makes it recent
    cache.put((1, 10, 1, 1), "10" * 32)
    assert cache.get((1, 0, 1, 1)) is not None
    assert cache.get((1, 1, 1, 1)) is None
    for inode in range(11, 25):
        cache.put((1, inode, 1, 1), f"{inode:064x}")
        assert len(cache) <= 10
    assert cache.get((1, 24, 1, 1)) is not None
    assert cache.get((1, 1, 1, 1)) is None
    cache.close()
    reopened = HashCache.open(tmp_path / "hashes.db", max_entries=10)
    assert len(reopened) <= 10
    reopened.close()


def test_device_numbers_beyond_int64_are_stored(tmp_path: Path) -> None:
    cache = HashCache.open(tmp_path / "hashes.db")
    key = (2**64 - 1, 2**63 + 5, 10, 20)
    cache.put(key, "aa" * 32)
    assert cache.get(key) is not None
    cache.close()


def test_a_damaged_database_is_set_aside_and_replaced(tmp_path: Path) -> None:
    db = tmp_path / "hashes.db"
    db.write_bytes(b"this is not an SQLite database, just bytes" * 100)
    cache = HashCache.open(db)
    assert len(cache) == 0
    cache.put((1, 2, 3, 4), "ab" * 32)
    assert cache.get((1, 2, 3, 4)) is not None
    assert (tmp_path / "hashes.db.damaged").exists()
    cache.close()


def test_the_cache_file_is_private(tmp_path: Path) -> None:
    HashCache.open(tmp_path / "hashes.db").close()
    assert (tmp_path / "hashes.db").stat().st_mode & 0o077 == 0
