"""Delivery state kept in the spool file: quarantine, flags, and moving the chain to resync.

Refused envelopes leave the queue for a small quarantine table (the collector refused them
for good; resending cannot help) and are counted until the next health event reports them.
Flags: `needs_resync` (a fresh spool that has not yet learnt the collector's position),
`snapshot_wanted` (the collector, or a reset, asked for a full state snapshot), `revoked`,
and `resets` (corrupt spools moved aside, not yet reported).
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager, closing
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from wire import envelope
from wire.v1 import events_pb2

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS quarantine (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL,"
    " code TEXT NOT NULL, reason TEXT NOT NULL, data BLOB NOT NULL, at_ms INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS refused_unreported (code TEXT PRIMARY KEY, count INTEGER NOT NULL)",
)
MAX_QUARANTINE = 200


class SpoolLike(Protocol):
    def transaction(self, op: str) -> AbstractContextManager[sqlite3.Connection]: ...

    def reading(self, op: str) -> AbstractContextManager[sqlite3.Connection]: ...


def kept_when_full(event: events_pb2.Event) -> bool:
    """Snapshots and health events are what a collector rebuilds from after a loss."""
    return event.action == "snapshot" or event.WhichOneof("body") == "agent_health"


def flag(spool: SpoolLike, name: str) -> int:
    with spool.reading("flag") as conn:
        row = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    return int(row[0]) if row else 0


def set_flag(spool: SpoolLike, name: str, value: int) -> None:
    with spool.transaction("set_flag") as conn:
        _set(conn, name, value)


def _set(conn: sqlite3.Connection, name: str, value: int) -> None:
    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))


def take_flag(spool: SpoolLike, name: str) -> int:
    """The flag's value, cleared."""
    with spool.transaction("take_flag") as conn:
        row = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        _set(conn, name, 0)
    return int(row[0]) if row else 0


def quarantine(spool: SpoolLike, refused: list[tuple[int, str, str]], now_ms: int) -> int:
    """Move the envelopes at these seqs (seq, code, reason) out of the queue; the count."""
    moved = 0
    with spool.transaction("quarantine") as conn:
        for seq, code, reason in refused:
            row = conn.execute("SELECT data FROM envelopes WHERE seq = ?", (seq,)).fetchone()
            if row is None:
                continue
            conn.execute(
                "INSERT INTO quarantine (seq, code, reason, data, at_ms) VALUES (?, ?, ?, ?, ?)",
                (seq, code[:64], reason[:1000], row[0], now_ms),
            )
            conn.execute("DELETE FROM envelopes WHERE seq = ?", (seq,))
            conn.execute(
                "UPDATE chain SET pending_bytes = pending_bytes - ? WHERE id = 1", (len(row[0]),)
            )
            conn.execute(
                "INSERT INTO refused_unreported VALUES (?, 1)"
                " ON CONFLICT (code) DO UPDATE SET count = count + 1",
                (code[:64],),
            )
            moved += 1
        conn.execute(
            "DELETE FROM quarantine WHERE id <= (SELECT id FROM quarantine ORDER BY id DESC"
            " LIMIT 1 OFFSET ?)",
            (MAX_QUARANTINE,),
        )
    return moved


def quarantined(spool: SpoolLike) -> list[tuple[int, str, str]]:
    with spool.reading("quarantined") as conn:
        return [
            (int(seq), str(code), str(reason))
            for seq, code, reason in conn.execute(
                "SELECT seq, code, reason FROM quarantine ORDER BY id"
            )
        ]


def take_refused(spool: SpoolLike) -> tuple[int, list[str]]:
    """Refusals since the last call: the total and "code: count" per code."""
    with spool.transaction("take_refused") as conn:
        rows = conn.execute("SELECT code, count FROM refused_unreported ORDER BY code").fetchall()
        conn.execute("DELETE FROM refused_unreported")
    return sum(int(n) for _, n in rows), [f"{code}: {n}" for code, n in rows]


def rebase(
    spool: SpoolLike,
    *,
    last_seq: int,
    last_digest: bytes,
    agent_id: str,
    key: Ed25519PrivateKey,
) -> int:
    """Continue the chain from the collector's position: re-sign every pending envelope.

    Only for a spool that has never shipped (needs_resync): its envelopes were never seen
    by the collector, so renumbering them above the collector's tip loses and forges
    nothing. Returns how many were re-signed; a snapshot is asked for, since what the lost
    spool held is gone.
    """
    with spool.transaction("rebase") as conn:
        with closing(conn.execute("SELECT seq, data FROM envelopes ORDER BY seq")) as rows:
            pending = [(int(seq), bytes(data)) for seq, data in rows]
        seq, prev = last_seq, last_digest
        resigned: list[tuple[int, bytes, int]] = []
        for old_seq, data in pending:
            seq += 1
            env = _resign(data, seq=seq, prev=prev, agent_id=agent_id, key=key)
            prev = envelope.digest(env)
            keep = conn.execute("SELECT keep FROM envelopes WHERE seq = ?", (old_seq,)).fetchone()
            resigned.append((seq, env.SerializeToString(), int(keep[0])))
        conn.execute("DELETE FROM envelopes")
        conn.executemany("INSERT INTO envelopes (seq, data, keep) VALUES (?, ?, ?)", resigned)
        conn.execute(
            "UPDATE chain SET last_seq = ?, last_digest = ?, acked_seq = ?,"
            " pending_bytes = ? WHERE id = 1",
            (seq, prev, last_seq, sum(len(d) for _, d, _ in resigned)),
        )
        _set(conn, "needs_resync", 0)
        _set(conn, "snapshot_wanted", 1)
    return len(resigned)


def catch_up(spool: SpoolLike, *, last_seq: int, last_digest: bytes) -> bool:
    """When the collector holds more of this key's chain than this spool ever signed (a
    restored backup, or a clone), continue new envelopes from the collector's tip."""
    with spool.transaction("catch_up") as conn:
        (mine,) = conn.execute("SELECT last_seq FROM chain WHERE id = 1").fetchone()
        if last_seq <= int(mine):
            return False
        conn.execute(
            "UPDATE chain SET last_seq = ?, last_digest = ? WHERE id = 1", (last_seq, last_digest)
        )
        _set(conn, "snapshot_wanted", 1)
    return True


def _resign(
    data: bytes, *, seq: int, prev: bytes, agent_id: str, key: Ed25519PrivateKey
) -> events_pb2.Envelope:
    old = events_pb2.Envelope.FromString(data)
    payload = events_pb2.Payload.FromString(old.payload)
    payload.seq, payload.prev_digest, payload.agent_id = seq, prev, agent_id
    return envelope.seal(payload.SerializeToString(), key, key_id=agent_id)
