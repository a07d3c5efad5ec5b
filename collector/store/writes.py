"""The SQL of one ingest transaction: events, gaps, alerts and the inventory."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, case, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from collector.store import schema
from collector.store.inventory import (
    InventoryChange,
    clean_text,
    dedup_sha256,
    host_update,
    inventory_change,
    label,
    to_json,
)
from collector.store.records import Gap, NewAlert, StoredEvent

Excluded = Any  # the dialect's `excluded` column collection


def upsert(
    conn: Connection,
    table: Table,
    values: Mapping[str, object],
    keys: Sequence[str],
    update_set: Callable[[Excluded], Mapping[str, object]],
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE, which both databases spell the same way."""
    if conn.dialect.name == "sqlite":
        lite = sqlite_insert(table).values(dict(values))
        conn.execute(
            lite.on_conflict_do_update(index_elements=keys, set_=update_set(lite.excluded))
        )
    else:
        pg = pg_insert(table).values(dict(values))
        conn.execute(pg.on_conflict_do_update(index_elements=keys, set_=update_set(pg.excluded)))


def insert_events(conn: Connection, agent_id: str, events: Sequence[StoredEvent]) -> None:
    if not events:
        return
    conn.execute(
        schema.envelopes.insert(),
        [
            {
                "agent_id": agent_id,
                "seq": e.seq,
                "digest": e.digest,
                "envelope": e.envelope,
                "received_at": e.received_at,
            }
            for e in events
        ],
    )
    conn.execute(
        schema.events.insert(),
        [
            {
                "agent_id": agent_id,
                "seq": e.seq,
                "dataset": label(e.event, "event.dataset"),
                "action": label(e.event, "event.action"),
                "received_at": e.received_at,
                "body": to_json(e.event),
            }
            for e in events
        ],
    )


def insert_gaps(conn: Connection, gaps: Sequence[Gap]) -> None:
    if gaps:
        conn.execute(
            schema.gaps.insert(),
            [
                {"agent_id": g.agent_id, "from_seq": g.from_seq, "to_seq": g.to_seq, "at": g.at}
                for g in gaps
            ],
        )


def upsert_alert(conn: Connection, alert: NewAlert) -> None:
    """A new alert opens with count 1; a repeat counts up and reopens a resolved one."""
    alerts = schema.alerts
    values = {
        "dedup_sha256": dedup_sha256(alert.dedup_key),
        "dedup_key": clean_text(alert.dedup_key),
        "rule_id": clean_text(alert.rule_id),
        "rule_title": clean_text(alert.rule_title),
        "level": clean_text(alert.level),
        "status": "open",
        "agent_id": alert.agent_id,
        "host_name": clean_text(alert.host_name),
        "summary": clean_text(alert.summary),
        "event_seq": alert.event_seq,
        "count": 1,
        "first_seen": alert.at,
        "last_seen": alert.at,
    }
    upsert(
        conn,
        alerts,
        values,
        ["dedup_sha256"],
        lambda new: {
            "count": alerts.c.count + 1,
            "status": case((alerts.c.status == "resolved", "open"), else_=alerts.c.status),
            "last_seen": new.last_seen,
            "event_seq": new.event_seq,
            "summary": new.summary,
            "host_name": new.host_name,
            "rule_title": new.rule_title,
            "level": new.level,
        },
    )


def update_inventory(
    conn: Connection, agent_id: str, events: Sequence[StoredEvent], now: datetime
) -> None:
    """Hosts, model files and processes as the events describe them, in seq order."""
    host = host_update([e.event for e in events])
    conn.execute(
        update(schema.hosts)
        .where(schema.hosts.c.agent_id == agent_id)
        .values(last_seen=now, **host)
    )
    for stored in events:
        change = inventory_change(stored.event)
        if change is not None:
            _apply(conn, agent_id, change, stored.received_at)


def _apply(conn: Connection, agent_id: str, change: InventoryChange, at: datetime) -> None:
    if change.table == "models":
        table, key, end_column = schema.models, schema.models.c.path_sha256, "removed_at"
        identity: dict[str, object] = {"path_sha256": change.key_sha256, "path": change.path}
    else:
        table, key, end_column = schema.processes, schema.processes.c.key_sha256, "stopped_at"
        identity = {"key_sha256": change.key_sha256, "pid": change.pid, "name": change.name}
    if change.kind == "end":
        conn.execute(
            update(table)
            .where(table.c.agent_id == agent_id, key == change.key_sha256)
            .where(table.c[end_column].is_(None))
            .values({end_column: at, "last_seen": at})
        )
        return
    values = {"agent_id": agent_id, **identity, "fields": change.fields_json}
    values.update({"first_seen": at, "last_seen": at, end_column: None})
    upsert(
        conn,
        table,
        values,
        ["agent_id", key.name],
        lambda new: {"fields": new.fields, "last_seen": new.last_seen, end_column: None},
    )
