"""The forwarding queue: a durable, byte-bounded SQLite (WAL) file of events awaiting a SIEM.

Rows are deleted only when the SIEM accepted them. When the bound is reached the oldest
events go first and alerts last, and every drop is counted.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from collector.errors import CollectorError
from collector.forward.records import ALERT, EVENT, clean

_SCHEMA_VERSION = 1
_BUSY_TIMEOUT_S = 30.0
# AUTOINCREMENT: a row id is never reused, so an ack for a batch whose last row was dropped
# meanwhile cannot delete a newer row that took the same id.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    alert   INTEGER NOT NULL,
    created REAL NOT NULL,
    body    BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS rows_by_kind ON rows (alert, id);
CREATE TABLE IF NOT EXISTS meta (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    pending_bytes INTEGER NOT NULL,
    dropped_total INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta VALUES (1, 0, 0);
"""


class QueueError(CollectorError):
    """The forwarding queue file cannot be opened, read or written."""


@dataclass(frozen=True)
class QueuedRow:
    id: int
    kind: str  # records.ALERT or records.EVENT
    created: float
    event: dict[str, object]


@dataclass(frozen=True)
class QueueStats:
    rows: int
    bytes: int
    dropped_total: int
    oldest_created: float | None

    def lag_s(self, now_s: float) -> float:
        """Age of the oldest row waiting: how far the SIEM is behind."""
        return 0.0 if self.oldest_created is None else max(0.0, now_s - self.oldest_created)


class ForwardQueue:
    """One sink's queue; appends from ingest threads, reads and acks from its forwarder."""

    def __init__(self, conn: sqlite3.Connection, path: Path, max_bytes: int) -> None:
        self._conn, self._path, self._max_bytes = conn, path, max_bytes
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, *, max_bytes: int) -> ForwardQueue:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
        try:
            conn = sqlite3.connect(
                path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise QueueError(f"{path}: cannot open forwarding queue: {exc}") from exc
        queue = cls(conn, path, max_bytes)
        try:
            queue._prepare()
        except BaseException:
            conn.close()
            raise
        return queue

    def _prepare(self) -> None:
        with self._guard("open") as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            # FULL: an event the ingest path handed over survives a power cut, not only a
            # crash. Appends come a whole agent batch per transaction, so the fsync is shared.
            conn.execute("PRAGMA synchronous = FULL")
        with self._write("open") as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, _SCHEMA_VERSION):
                raise QueueError(f"{self._path}: queue schema version {version} not supported")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    @contextmanager
    def _guard(self, op: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise QueueError(f"{self._path}: {op}: {exc}") from exc

    @contextmanager
    def _write(self, op: str) -> Iterator[sqlite3.Connection]:
        with self._guard(op) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # a failed COMMIT (disk full) leaves it open
                    conn.execute("ROLLBACK")
                raise

    def append(self, items: Sequence[tuple[str, Mapping[str, object]]], *, now_s: float) -> int:
        """Store (kind, flat event) pairs in one transaction; return how many were kept."""
        bodies = [
            (int(kind == ALERT), json.dumps(clean(event), ensure_ascii=False).encode())
            for kind, event in items
        ]
        insert = "INSERT INTO rows (alert, created, body) VALUES (?, ?, ?)"
        kept: list[tuple[int, float, bytes]] = []
        stored = dropped = 0
        with self._write("append") as conn:
            (pending,) = conn.execute("SELECT pending_bytes FROM meta WHERE id = 1").fetchone()
            for alert, body in bodies:
                if pending + len(body) > self._max_bytes:
                    # Rows of this batch are candidates for dropping too: store them first.
                    conn.executemany(insert, kept)
                    stored, kept = stored + len(kept), []
                    count, freed, fits = _make_room(
                        conn, pending, len(body), bool(alert), self._max_bytes
                    )
                    pending, dropped = pending - freed, dropped + count
                    if not fits:
                        dropped += 1
                        continue
                kept.append((alert, now_s, body))
                pending += len(body)
            conn.executemany(insert, kept)
            conn.execute(
                "UPDATE meta SET pending_bytes = ?, dropped_total = dropped_total + ? WHERE id = 1",
                (pending, dropped),
            )
        return stored + len(kept)

    def peek(self, *, limit: int, max_bytes: int) -> list[QueuedRow]:
        """The oldest rows, within `limit` rows and `max_bytes` of bodies (but at least one)."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        batch: list[QueuedRow] = []
        total = 0
        query = "SELECT id, alert, created, body FROM rows ORDER BY id LIMIT ?"
        with self._guard("peek") as conn, closing(conn.execute(query, (limit,))) as rows:
            for row_id, alert, created, body in rows:
                if batch and total + len(body) > max_bytes:
                    break
                total += len(body)
                event = json.loads(bytes(body))
                batch.append(QueuedRow(row_id, ALERT if alert else EVENT, created, event))
        return batch

    def ack(self, ids: Sequence[int]) -> int:
        """Delete the rows the SIEM accepted; ids already dropped are ignored."""
        deleted = 0
        with self._write("ack") as conn:
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                marks = ",".join("?" * len(chunk))
                count, freed = conn.execute(
                    f"SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM rows"
                    f" WHERE id IN ({marks})",
                    chunk,
                ).fetchone()
                conn.execute(f"DELETE FROM rows WHERE id IN ({marks})", chunk)
                conn.execute(
                    "UPDATE meta SET pending_bytes = pending_bytes - ? WHERE id = 1", (freed,)
                )
                deleted += int(count)
        return deleted

    def stats(self) -> QueueStats:
        with self._guard("stats") as conn:
            row = conn.execute(
                "SELECT (SELECT COUNT(*) FROM rows), pending_bytes, dropped_total,"
                " (SELECT created FROM rows ORDER BY id LIMIT 1) FROM meta WHERE id = 1"
            ).fetchone()
        return QueueStats(int(row[0]), int(row[1]), int(row[2]), row[3])

    def close(self) -> None:
        with self._guard("close") as conn:
            conn.close()


def _make_room(
    conn: sqlite3.Connection, pending: int, incoming: int, alert: bool, max_bytes: int
) -> tuple[int, int, bool]:
    """Drop rows until `incoming` fits: (rows dropped, bytes freed, whether it fits now).

    Events go oldest first; alerts only to make room for a newer alert. An event that does
    not fit after every older event is gone is itself the one dropped.
    """
    if incoming > max_bytes:
        return 0, 0, False
    excess = pending + incoming - max_bytes
    count = freed = 0
    for kind in (0, 1) if alert else (0,):
        if freed >= excess:
            break
        cutoff = None
        query = "SELECT id, LENGTH(body) FROM rows WHERE alert = ? ORDER BY id"
        with closing(conn.execute(query, (kind,))) as rows:
            for row_id, size in rows:
                if freed >= excess:
                    break
                count, freed, cutoff = count + 1, freed + size, row_id
        if cutoff is not None:
            conn.execute("DELETE FROM rows WHERE alert = ? AND id <= ?", (kind, cutoff))
    return count, freed, freed >= excess
