"""Content hashes that survive restarts: SQLite keyed by (device, inode) and valid only while
size and mtime_ns still match, so no unchanged file is hashed twice and hardlinks share one."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.inventory import StatKey
from agent.sensors.files import sha256_file

log = logging.getLogger(__name__)

CACHE_FILE = "hashes.db"
_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS hashes (
    device INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    fingerprint TEXT,
    seen INTEGER NOT NULL,
    PRIMARY KEY (device, inode)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS hashes_seen ON hashes (seen)
"""
# Integers SQLite cannot hold (device numbers are unsigned 64-bit on some systems) are folded.
_INT64 = 1 << 63


@dataclass(frozen=True)
class CachedHash:
    sha256: str
    fingerprint: str | None


class HashCache:
    """A bounded map from a file's identity to its digest; beyond `max_entries`, the entries
    seen least recently go. A damaged database file is set aside and started afresh: the cost
    of losing it is hashing again, nothing more."""

    def __init__(self, conn: sqlite3.Connection, path: Path, max_entries: int) -> None:
        self._conn = conn
        self._path = path
        self._max = max_entries
        # The pass, the watcher and the background hasher share one cache.
        self._lock = threading.Lock()
        self._tick = conn.execute("SELECT COALESCE(MAX(seen), 0) FROM hashes").fetchone()[0]
        self._count = conn.execute("SELECT COUNT(*) FROM hashes").fetchone()[0]
        self._warned = False

    @classmethod
    def open(cls, path: Path, *, max_entries: int = 200_000) -> HashCache:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        try:
            return cls(_connect(path), path, max_entries)
        except sqlite3.DatabaseError as exc:
            aside = path.with_name(path.name + ".damaged")
            log.warning("%s: hash cache unreadable (%s); moved to %s", path, exc, aside)
            for suffix in ("", "-wal", "-shm"):
                _replace(Path(str(path) + suffix), Path(str(aside) + suffix))
            return cls(_connect(path), path, max_entries)

    def __len__(self) -> int:
        with self._lock:
            return int(self._count)

    def get(self, key: StatKey) -> CachedHash | None:
        """The digest stored for this file, if its size and mtime are still the same."""
        dev, ino, size, mtime = _fold(key)
        with self._lock:
            try:
                row = self._conn.execute(
                    "SELECT sha256, fingerprint FROM hashes"
                    " WHERE device = ? AND inode = ? AND size = ? AND mtime_ns = ?",
                    (dev, ino, size, mtime),
                ).fetchone()
                if row is None:
                    return None
                self._tick += 1
                self._conn.execute(
                    "UPDATE hashes SET seen = ? WHERE device = ? AND inode = ?",
                    (self._tick, dev, ino),
                )
            except sqlite3.Error as exc:
                self._failed("get", exc)
                return None
        return CachedHash(row[0], row[1])

    def put(self, key: StatKey, sha256: str, fingerprint: str | None = None) -> None:
        """Remember a digest; it replaces whatever this inode held before."""
        dev, ino, size, mtime = _fold(key)
        with self._lock:
            self._tick += 1
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    known = self._conn.execute(
                        "SELECT 1 FROM hashes WHERE device = ? AND inode = ?", (dev, ino)
                    ).fetchone()
                    self._conn.execute(
                        "INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (dev, ino, size, mtime, sha256, fingerprint, self._tick),
                    )
                    if known is None and self._count + 1 > self._max:
                        self._evict()
                    self._conn.execute("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise
                self._count = self._count if known else self._count + 1
            except sqlite3.Error as exc:
                self._failed("put", exc)

    def _evict(self) -> None:
        # A tenth more than needed, so that a full cache does not evict on every insert.
        excess = self._count + 1 - self._max + self._max // 10
        self._conn.execute(
            "DELETE FROM hashes WHERE (device, inode) IN"
            " (SELECT device, inode FROM hashes ORDER BY seen LIMIT ?)",
            (excess,),
        )
        # The row just written has the newest tick, so it stays; count what is left before it.
        self._count = self._conn.execute("SELECT COUNT(*) FROM hashes").fetchone()[0] - 1

    def _failed(self, op: str, exc: sqlite3.Error) -> None:
        # The cache only saves work: a broken one costs hashing again, not the scan.
        level = logging.DEBUG if self._warned else logging.WARNING
        log.log(level, "%s: hash cache %s failed: %s", self._path, op, exc)
        self._warned = True

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # a lost last entry costs one re-hash
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, _SCHEMA_VERSION):
            raise sqlite3.DatabaseError(f"schema version {version} is not {_SCHEMA_VERSION}")
        conn.executescript(_SCHEMA)
        conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        os.chmod(path, 0o600)
    except BaseException:
        conn.close()
        raise
    return conn


def _replace(src: Path, dst: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.replace(src, dst)


def _fold(key: StatKey) -> StatKey:
    return (
        key[0] - 2 * _INT64 if key[0] >= _INT64 else key[0],
        key[1] - 2 * _INT64 if key[1] >= _INT64 else key[1],
        key[2],
        key[3],
    )


HashFile = Callable[..., str | None]


class CachingHasher:
    """The sha256 of a file through the cache: a hit costs one lookup, a miss one (throttled)
    read of the file, and a file that changed while it was read gives None."""

    def __init__(
        self,
        cache: HashCache | None,
        *,
        stop: threading.Event | None = None,
        bytes_per_second: int | None = None,
        hash_file: HashFile = sha256_file,
    ) -> None:
        self._cache = cache
        self._stop = stop
        self._rate = bytes_per_second
        self._hash_file = hash_file
        self.hashed = 0  # files read in full: the figure the cache exists to keep low
        self.hits = 0

    def cached(self, key: StatKey) -> str | None:
        """The digest already known for this version of a file, without reading it."""
        found = self._cache.get(key) if self._cache is not None else None
        if found is None:
            return None
        self.hits += 1
        return found.sha256

    def __call__(self, path: str, key: StatKey, fingerprint: str | None = None) -> str | None:
        digest = self.cached(key)
        if digest is not None:
            return digest
        digest = self._hash_file(
            Path(path), stop=self._stop, bytes_per_second=self._rate, expect=key
        )
        if digest is None:
            return None
        self.hashed += 1
        if self._cache is not None:
            self._cache.put(key, digest, fingerprint)
        return digest
