"""The SQL of delivery: refused envelopes, collector events and per-agent counters.

Refusals and collector events are bounded per agent and by age, pruned in the transaction
that adds to them, so a hostile or broken agent cannot fill the database.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from collector.store import schema
from collector.store.inventory import clean_event, clean_text, dumps

MAX_PER_AGENT = 1000
RETENTION = timedelta(days=30)
# Larger envelopes are refused for size anyway; the analyst gets the reason and the digest.
MAX_KEPT_ENVELOPE = 64 * 1024
Item = dict[str, object]


@dataclass(frozen=True)
class Refusal:
    """One envelope refused for good, as kept for the analyst."""

    agent_id: str
    seq: int
    code: str
    reason: str
    digest: bytes
    envelope: bytes
    received_at: datetime


@dataclass(frozen=True)
class CollectorEvent:
    """A flat shadowai.collector event (DESIGN.md) about one agent."""

    agent_id: str
    reason: str
    at: datetime
    fields: Mapping[str, object]


def add(
    conn: Connection,
    refusals: Sequence[Refusal],
    notes: Sequence[CollectorEvent],
    counts: Mapping[str, int],
    agent_id: str,
    now: datetime,
) -> None:
    """Store one batch's refusals, collector events and counter increments."""
    if refusals:
        conn.execute(schema.refusals.insert(), [_refusal_row(r) for r in refusals])
        _prune(conn, schema.refusals, agent_id, schema.refusals.c.received_at, now)
    if notes:
        conn.execute(schema.collector_events.insert(), [_note_row(n) for n in notes])
        _prune(conn, schema.collector_events, agent_id, schema.collector_events.c.at, now)
    if counts:
        bump(conn, agent_id, counts, now)


def _refusal_row(r: Refusal) -> Item:
    return {
        "agent_id": r.agent_id,
        "seq": r.seq,
        "code": clean_text(r.code, 64),
        "reason": clean_text(r.reason, 1000),
        "digest": r.digest,
        "envelope": r.envelope if len(r.envelope) <= MAX_KEPT_ENVELOPE else None,
        "received_at": r.received_at,
    }


def _note_row(n: CollectorEvent) -> Item:
    return {
        "agent_id": n.agent_id,
        "reason": clean_text(n.reason, 64),
        "at": n.at,
        "body": dumps(clean_event(n.fields)),
    }


def _prune(conn: Connection, table: Table, agent_id: str, when: Any, now: datetime) -> None:
    conn.execute(delete(table).where(when < now - RETENTION))
    cutoff = conn.execute(
        select(table.c.id)
        .where(table.c.agent_id == agent_id)
        .order_by(table.c.id.desc())
        .offset(MAX_PER_AGENT)
        .limit(1)
    ).scalar()
    if cutoff is not None:
        conn.execute(delete(table).where(table.c.agent_id == agent_id, table.c.id <= cutoff))


def bump(conn: Connection, agent_id: str, counts: Mapping[str, int], now: datetime) -> None:
    table = schema.delivery_counters
    rows = [
        {"agent_id": agent_id, "name": name, "count": n, "last_at": now}
        for name, n in sorted(counts.items())
        if n
    ]
    if not rows:
        return
    insert = sqlite_insert(table) if conn.dialect.name == "sqlite" else pg_insert(table)
    statement = insert.on_conflict_do_update(
        index_elements=["agent_id", "name"],
        set_={"count": table.c.count + insert.excluded.count, "last_at": insert.excluded.last_at},
    )
    conn.execute(statement, rows)


def held_digests(conn: Connection, agent_id: str, seqs: Sequence[int]) -> dict[int, bytes]:
    envelopes = schema.envelopes
    rows = conn.execute(
        select(envelopes.c.seq, envelopes.c.digest).where(
            envelopes.c.agent_id == agent_id, envelopes.c.seq.in_(sorted(set(seqs)))
        )
    )
    return {int(r.seq): bytes(r.digest) for r in rows}


def fork_digests(conn: Connection, agent_id: str, above_seq: int) -> set[bytes]:
    table = schema.refusals
    rows = conn.execute(
        select(table.c.digest).where(
            table.c.agent_id == agent_id,
            table.c.seq > above_seq,
            table.c.code.in_(["fork", "replay_mismatch"]),
        )
    )
    return {bytes(r.digest) for r in rows}


def counters(conn: Connection, agent_id: str | None = None) -> dict[str, dict[str, int]]:
    """Per agent: counter name -> count."""
    table = schema.delivery_counters
    query = select(table.c.agent_id, table.c.name, table.c.count.label("n"))
    if agent_id is not None:
        query = query.where(table.c.agent_id == agent_id)
    result: dict[str, dict[str, int]] = {}
    for row in conn.execute(query):
        result.setdefault(row.agent_id, {})[row.name] = int(row.n)
    return result


def counters_of(conn: Connection, agent_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """counters() of these agents only: what one page of the agents list shows."""
    table = schema.delivery_counters
    result: dict[str, dict[str, int]] = {}
    if not agent_ids:
        return result
    query = select(table.c.agent_id, table.c.name, table.c.count.label("n"))
    for row in conn.execute(query.where(table.c.agent_id.in_(sorted(set(agent_ids))))):
        result.setdefault(row.agent_id, {})[row.name] = int(row.n)
    return result


def list_refusals(
    conn: Connection, *, agent_id: str | None, limit: int, before_id: int | None
) -> list[Item]:
    """Newest first; `before_id` pages on."""
    table = schema.refusals
    query = select(
        table.c.id,
        table.c.agent_id,
        table.c.seq,
        table.c.code,
        table.c.reason,
        table.c.digest,
        table.c.received_at,
        func.length(table.c.envelope).label("envelope_bytes"),
    )
    where = []
    if agent_id is not None:
        where.append(table.c.agent_id == agent_id)
    if before_id is not None:
        where.append(table.c.id < before_id)
    if where:
        query = query.where(and_(*where))
    rows = conn.execute(query.order_by(table.c.id.desc()).limit(limit))
    return [
        {
            "id": int(r.id),
            "agent_id": r.agent_id,
            "seq": int(r.seq),
            "code": r.code,
            "reason": r.reason,
            "digest": bytes(r.digest).hex(),
            "received_at": r.received_at.isoformat(),
            "envelope_bytes": None if r.envelope_bytes is None else int(r.envelope_bytes),
        }
        for r in rows
    ]


def list_collector_events(
    conn: Connection, *, agent_id: str | None, limit: int, before_id: int | None
) -> list[Item]:
    """Newest first."""
    table = schema.collector_events
    query = select(table)
    if agent_id is not None:
        query = query.where(table.c.agent_id == agent_id)
    if before_id is not None:
        query = query.where(table.c.id < before_id)
    rows = conn.execute(query.order_by(table.c.id.desc()).limit(limit))
    return [{"id": int(r.id), **json.loads(r.body)} for r in rows]


def silent_agents(conn: Connection, *, seen_before: datetime) -> list[tuple[str, datetime]]:
    """Agents last seen before `seen_before` whose silence since then is not yet reported."""
    agents, counters_t = schema.agents, schema.delivery_counters
    reported = (
        select(counters_t.c.last_at)
        .where(counters_t.c.agent_id == agents.c.agent_id, counters_t.c.name == "silence")
        .scalar_subquery()
    )
    rows = conn.execute(
        select(agents.c.agent_id, agents.c.last_seen).where(
            agents.c.last_seen.is_not(None),
            agents.c.last_seen < seen_before,
            agents.c.revoked.is_(False),
            func.coalesce(reported, agents.c.last_seen) <= agents.c.last_seen,
        )
    )
    return [(str(r.agent_id), r.last_seen) for r in rows]
