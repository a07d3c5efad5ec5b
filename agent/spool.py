"""The agent's durable, byte-bounded queue of signed envelopes, and its hash-chain state.

Seq allocation, chaining, signing and storing happen in one SQLite transaction, so a crash
leaves either the whole envelope and the advanced chain, or neither. Delivery state (refused
envelopes in quarantine, a pending resync, a wanted snapshot) lives in the same file, in
agent.spoolstate, so that it survives restarts with the chain it is about.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent import spoolstate
from agent.errors import SpoolError
from wire import envelope
from wire.v1 import events_pb2

_SCHEMA_VERSION = 2
# Long enough to ride out another process's append (one fsync), short enough to surface a hang.
_BUSY_TIMEOUT_S = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS envelopes (
    seq  INTEGER PRIMARY KEY,
    data BLOB NOT NULL,
    keep INTEGER NOT NULL DEFAULT 0  -- 1: a state snapshot or health event, dropped last
);
CREATE TABLE IF NOT EXISTS chain (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq         INTEGER NOT NULL,
    last_digest      BLOB NOT NULL,
    acked_seq        INTEGER NOT NULL,
    pending_bytes    INTEGER NOT NULL,
    dropped_total    INTEGER NOT NULL,
    dropped_reported INTEGER NOT NULL
);
INSERT OR IGNORE INTO chain VALUES (1, 0, x'', 0, 0, 0, 0);
"""
# A fresh spool does not know where the collector's copy of the chain stands: it must ask
# before it ships (agent.resync), so a new spool starts with a resync pending.
_FRESH = "INSERT OR IGNORE INTO meta VALUES ('needs_resync', 1)"
_HIGH_RATIO = 0.9


@dataclass(frozen=True)
class SpoolStats:
    pending: int
    pending_bytes: int
    dropped_total: int
    last_seq: int
    acked_seq: int
    max_bytes: int = 0

    @property
    def level(self) -> str:
        """ok, high (>= 90% of the bound) or full (another envelope would drop one)."""
        if self.max_bytes <= 0:
            return "ok"
        ratio = self.pending_bytes / self.max_bytes
        return "full" if ratio >= 0.99 else "high" if ratio >= _HIGH_RATIO else "ok"


class Spool:
    """Envelopes wait here until the collector acks them; the oldest go first when full."""

    def __init__(self, conn: sqlite3.Connection, path: Path, max_bytes: int) -> None:
        self._conn = conn
        self._path = path
        self._max_bytes = max_bytes
        # The daemon's sensors append while its shipper reads and acks, possibly on other threads.
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, *, max_bytes: int = 256 * 2**20) -> Spool:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be > 0, got {max_bytes}")
        try:
            # Created owner-only before SQLite opens it, so it is never readable by others.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            conn = sqlite3.connect(
                path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except OSError as exc:
            raise SpoolError(f"{path}: cannot open spool: {exc}") from exc
        except sqlite3.Error as exc:
            raise SpoolError(f"{path}: cannot open spool: {exc}") from exc
        spool = cls(conn, path, max_bytes)
        try:
            spool._prepare()
        except BaseException:
            conn.close()
            raise
        return spool

    def reopen(self) -> None:
        """Start over on the file now at this path (the old one was deleted or replaced)."""
        with self._lock:
            self._conn.close()
            try:
                os.close(os.open(self._path, os.O_WRONLY | os.O_CREAT, 0o600))
                self._conn = sqlite3.connect(
                    self._path,
                    timeout=_BUSY_TIMEOUT_S,
                    isolation_level=None,
                    check_same_thread=False,
                )
            except (OSError, sqlite3.Error) as exc:
                raise SpoolError(f"{self._path}: cannot reopen spool: {exc}") from exc
        self._prepare()

    def _prepare(self) -> None:
        with self._guard("open") as conn:
            # WAL lets the shipper read while the sensors append. FULL fsyncs the WAL on every
            # commit: with NORMAL a power cut may roll back an envelope already shipped, and the
            # agent would then sign a different envelope under the same seq, which the
            # collector must treat as a fork. Appends are infrequent, so the fsync is cheap.
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
        with self._write("open") as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, 1, _SCHEMA_VERSION):
                raise SpoolError(f"{self._path}: spool schema version {version} is not supported")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            if version == 1:
                conn.execute("ALTER TABLE envelopes ADD COLUMN keep INTEGER NOT NULL DEFAULT 0")
            for statement in spoolstate.SCHEMA:
                conn.execute(statement)
            if version == 0:
                conn.execute(_FRESH)
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        _owner_only(self._path)

    @contextmanager
    def _guard(self, op: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise SpoolError(f"{self._path}: {op}: {exc}") from exc

    @contextmanager
    def _write(self, op: str) -> Iterator[sqlite3.Connection]:
        """One write transaction; IMMEDIATE takes the lock first so reads inside it stay true."""
        with self._guard(op) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (disk full) leaves the transaction open; end it here.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def append(
        self, event: events_pb2.Event, *, agent_id: str, key: Ed25519PrivateKey, now_ms: int
    ) -> int:
        """Sign `event` as the next link of the chain, store it, and return its seq."""
        with self._write("append") as conn:
            last_seq, last_digest = conn.execute(
                "SELECT last_seq, last_digest FROM chain WHERE id = 1"
            ).fetchone()
            seq = int(last_seq) + 1
            payload = events_pb2.Payload(
                agent_id=agent_id,
                seq=seq,
                prev_digest=last_digest,
                created_ms=now_ms,
                event=event,
            )
            env = envelope.seal(payload.SerializeToString(), key, key_id=agent_id)
            data = env.SerializeToString()
            dropped, freed = _make_room(conn, len(data), self._max_bytes)
            conn.execute(
                "INSERT INTO envelopes (seq, data, keep) VALUES (?, ?, ?)",
                (seq, data, int(spoolstate.kept_when_full(event))),
            )
            conn.execute(
                "UPDATE chain SET last_seq = ?, last_digest = ?,"
                " pending_bytes = pending_bytes - ? + ?, dropped_total = dropped_total + ?"
                " WHERE id = 1",
                (seq, envelope.digest(env), freed, len(data), dropped),
            )
        return seq

    def pending(self, *, limit: int = 500, max_bytes: int = 4 * 2**20) -> list[tuple[int, bytes]]:
        """The oldest pending envelopes, within `limit` items and `max_bytes` (but at least one)."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        batch: list[tuple[int, bytes]] = []
        total = 0
        query = "SELECT seq, data FROM envelopes ORDER BY seq LIMIT ?"
        with self._guard("pending") as conn, closing(conn.execute(query, (limit,))) as rows:
            for seq, data in rows:
                if batch and total + len(data) > max_bytes:
                    break
                batch.append((seq, bytes(data)))
                total += len(data)
        return batch

    def ack(self, upto_seq: int) -> int:
        """Forget every pending envelope up to `upto_seq`; return how many were deleted."""
        with self._write("ack") as conn:
            deleted, freed = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM envelopes WHERE seq <= ?",
                (upto_seq,),
            ).fetchone()
            conn.execute("DELETE FROM envelopes WHERE seq <= ?", (upto_seq,))
            # Never past last_seq: an ack for a seq not yet issued says nothing about it.
            conn.execute(
                "UPDATE chain SET pending_bytes = pending_bytes - ?,"
                " acked_seq = MAX(acked_seq, MIN(?, last_seq)) WHERE id = 1",
                (freed, upto_seq),
            )
        return int(deleted)

    def stats(self) -> SpoolStats:
        with self._guard("stats") as conn:
            row = conn.execute(
                "SELECT (SELECT COUNT(*) FROM envelopes), pending_bytes, dropped_total,"
                " last_seq, acked_seq FROM chain WHERE id = 1"
            ).fetchone()
        pending, pending_bytes, dropped, last_seq, acked_seq = row
        return SpoolStats(pending, pending_bytes, dropped, last_seq, acked_seq, self._max_bytes)

    @property
    def path(self) -> Path:
        return self._path

    @contextmanager
    def transaction(self, op: str) -> Iterator[sqlite3.Connection]:
        """One write transaction for agent.spoolstate, under the spool's lock."""
        with self._write(op) as conn:
            yield conn

    @contextmanager
    def reading(self, op: str) -> Iterator[sqlite3.Connection]:
        with self._guard(op) as conn:
            yield conn

    def take_dropped(self) -> int:
        """Drops not yet reported; they count as reported from now on."""
        with self._write("take_dropped") as conn:
            total, reported = conn.execute(
                "SELECT dropped_total, dropped_reported FROM chain WHERE id = 1"
            ).fetchone()
            conn.execute("UPDATE chain SET dropped_reported = ? WHERE id = 1", (total,))
        return int(total - reported)

    def close(self) -> None:
        with self._guard("close") as conn:
            conn.close()


def _make_room(conn: sqlite3.Connection, incoming: int, max_bytes: int) -> tuple[int, int]:
    """Delete envelopes until `incoming` fits; return (count, bytes) deleted.

    Ordinary events go first, oldest first; state snapshots and health events only when
    nothing else is left, because a snapshot is what lets the collector rebuild after a
    loss, and health is where the loss is reported. The incoming envelope is kept even when
    it alone is over the bound: the newest observation is the one worth having.
    """
    (pending_bytes,) = conn.execute("SELECT pending_bytes FROM chain WHERE id = 1").fetchone()
    excess = pending_bytes + incoming - max_bytes
    if excess <= 0:
        return 0, 0
    victims: list[int] = []
    freed = 0
    query = "SELECT seq, LENGTH(data) FROM envelopes ORDER BY keep, seq"
    with closing(conn.execute(query)) as rows:
        for seq, size in rows:
            if freed >= excess:
                break
            victims.append(seq)
            freed += size
    conn.executemany("DELETE FROM envelopes WHERE seq = ?", [(seq,) for seq in victims])
    return len(victims), freed


def _owner_only(path: Path) -> None:
    """The spool holds the inventory in clear: only its owner may read it, like the key."""
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            os.chmod(name, 0o600)
        except FileNotFoundError:
            pass
        except OSError as exc:  # e.g. a file system without modes; the data dir is 0700 anyway
            raise SpoolError(f"{name}: cannot make it owner-only: {exc}") from exc
