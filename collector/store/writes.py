"""The SQL of one ingest transaction: events, gaps, alerts and the inventory.

Each table gets one executemany per batch, of a statement compiled once per dialect.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Table, bindparam, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.sql.base import ReadOnlyColumnCollection
from sqlalchemy.sql.dml import Insert, Update
from sqlalchemy.sql.elements import KeyedColumnElement

from collector.store import alerting, digests, schema
from collector.store.bulk import execute_many as _execute_many
from collector.store.inventory import (
    InventoryEnd,
    InventoryRow,
    clean_event,
    dumps,
    host_update,
    inventory_change,
    label,
    model_columns,
    net_changes,
    process_columns,
)
from collector.store.lifecycle import end_reason, subject_of
from collector.store.records import Gap, NewAlert, StoredEvent

Excluded = ReadOnlyColumnCollection[str, KeyedColumnElement[Any]]
Row = dict[str, object]
# Per inventory table: its key column and the column that says the row has gone.
_INVENTORY = {
    "models": (schema.models, "path_sha256", "removed_at"),
    "processes": (schema.processes, "key_sha256", "stopped_at"),
}
# The columns each table copies out of its fields (and updates with them).
_COLUMN_COPIES = {"models": tuple(model_columns({})), "processes": tuple(process_columns({}))}


def ingest(
    conn: Connection,
    agent_id: str,
    events: Sequence[StoredEvent],
    gaps: Sequence[Gap],
    alerts: Sequence[NewAlert],
    now: datetime,
) -> None:
    """Everything a verified batch writes once its agent's chain has advanced."""
    cleaned = [clean_event(e.event) for e in events]
    _insert_events(conn, agent_id, events, cleaned)
    if gaps:
        conn.execute(
            schema.gaps.insert(),
            [
                {"agent_id": g.agent_id, "from_seq": g.from_seq, "to_seq": g.to_seq, "at": g.at}
                for g in gaps
            ],
        )
    alerting.apply_matches(conn, alerts)
    alerting.apply_ends(conn, _ends(agent_id, events))
    _update_inventory(conn, agent_id, events, cleaned, now)


def _ends(agent_id: str, events: Sequence[StoredEvent]) -> list[alerting.End]:
    """Subjects whose last event in the batch removed or stopped them."""
    last: dict[str, tuple[str | None, datetime]] = {}
    for e in events:
        last[subject_of(e.event)] = (end_reason(e.event), e.received_at)
    return [
        alerting.End(agent_id, subject, reason, at)
        for subject, (reason, at) in last.items()
        if reason is not None
    ]


def _insert_events(
    conn: Connection,
    agent_id: str,
    events: Sequence[StoredEvent],
    cleaned: Sequence[Mapping[str, object]],
) -> None:
    _execute_many(
        conn,
        _plain_insert("envelopes"),
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
    _execute_many(
        conn,
        _plain_insert("events"),
        [
            {
                "agent_id": agent_id,
                "seq": e.seq,
                "dataset": label(e.event, "event.dataset"),
                "action": label(e.event, "event.action"),
                "received_at": e.received_at,
                "body": dumps(clean),
            }
            for e, clean in zip(events, cleaned, strict=True)
        ],
    )


def _update_inventory(
    conn: Connection,
    agent_id: str,
    events: Sequence[StoredEvent],
    cleaned: Sequence[Mapping[str, object]],
    now: datetime,
) -> None:
    """Hosts, model files and processes as the events describe them, in seq order."""
    host = host_update([e.event for e in events])
    conn.execute(
        update(schema.hosts)
        .where(schema.hosts.c.agent_id == agent_id)
        .values(last_seen=now, **host)
    )
    changes = [
        (inventory_change(e.event, clean), e.received_at)
        for e, clean in zip(events, cleaned, strict=True)
    ]
    upserts, ends = net_changes((c, at) for c, at in changes if c is not None)
    model_rows = [row for row in upserts if row.latest.table == "models"]
    model_ends = [end for end in ends if end.table == "models"]
    keys = [row.latest.key_sha256 for row in model_rows] + [end.key_sha256 for end in model_ends]
    prior = digests.prior_state(conn, agent_id, keys) if keys else {}
    # Most of a snapshot is files as they were: writing only fields and last_seen leaves
    # every index alone (SQLite rewrote all nine partial indexes for a removed_at in SET).
    same = [row for row in model_rows if digests.unchanged(row, prior)]
    _execute_many(conn, _model_touch(), [_touch_row(agent_id, row) for row in same])
    touched = {id(row) for row in same}
    for name in _INVENTORY:
        rows = [
            _inventory_row(agent_id, row)
            for row in upserts
            if row.latest.table == name and id(row) not in touched
        ]
        _execute_many(conn, _inventory_upsert(conn.dialect.name, name), rows)
        gone = [_end_row(agent_id, end) for end in ends if end.table == name]
        _execute_many(conn, _inventory_end(name), gone)
    if keys:
        digests.apply(conn, agent_id, digests.digest_changes(model_rows, model_ends, prior))


def _inventory_row(agent_id: str, row: InventoryRow) -> Row:
    change = row.latest
    _, key, end_column = _INVENTORY[change.table]
    values: Row = {"agent_id": agent_id, key: change.key_sha256}
    if change.table == "models":
        values["path"] = change.path
    else:
        values.update(pid=change.pid, name=change.name)
    values.update(fields=change.fields_json, first_seen=row.first_seen, last_seen=row.last_seen)
    values[end_column] = row.ended_at
    values.update(change.columns)
    return values


def _touch_row(agent_id: str, row: InventoryRow) -> Row:
    return {
        "b_agent_id": agent_id,
        "b_key": row.latest.key_sha256,
        "b_fields": row.latest.fields_json,
        "b_last_seen": row.last_seen,
    }


def _end_row(agent_id: str, end: InventoryEnd) -> Row:
    return {"b_agent_id": agent_id, "b_key": end.key_sha256, "b_at": end.at}


# Statements, built once.


@cache
def _plain_insert(name: str) -> Insert:
    return schema.metadata.tables[name].insert()


def _upsert(
    dialect: str,
    table: Table,
    keys: Sequence[str],
    update_set: Callable[[Excluded], Mapping[str, object]],
) -> Insert:
    """INSERT ... ON CONFLICT (keys) DO UPDATE, which both databases spell the same way."""
    if dialect == "sqlite":
        lite = sqlite_insert(table)
        return lite.on_conflict_do_update(index_elements=keys, set_=update_set(lite.excluded))
    pg = pg_insert(table)
    return pg.on_conflict_do_update(index_elements=keys, set_=update_set(pg.excluded))


@cache
def _inventory_upsert(dialect: str, name: str) -> Insert:
    table, key, end_column = _INVENTORY[name]
    copies = _COLUMN_COPIES[name]
    return _upsert(
        dialect,
        table,
        ["agent_id", key],
        lambda new: {
            "fields": new.fields,
            "last_seen": new.last_seen,
            end_column: new[end_column],
            **{column: new[column] for column in copies},
        },
    )


@cache
def _model_touch() -> Update:
    models = schema.models
    return (
        update(models)
        .where(models.c.agent_id == bindparam("b_agent_id"))
        .where(models.c.path_sha256 == bindparam("b_key"))
        .values(
            fields=bindparam("b_fields"),
            last_seen=bindparam("b_last_seen", type_=models.c.last_seen.type),
        )
    )


@cache
def _inventory_end(name: str) -> Update:
    table, key, end_column = _INVENTORY[name]
    # Bind names differ from column names: SQLAlchemy keeps those for the SET clause.
    at = bindparam("b_at", type_=table.c[end_column].type)
    return (
        update(table)
        .where(table.c.agent_id == bindparam("b_agent_id"), table.c[key] == bindparam("b_key"))
        .where(table.c[end_column].is_(None))
        .values({end_column: at, "last_seen": at})
    )


# For alerting.py: the same fast path for its inserts.
execute_many = _execute_many
plain_insert = _plain_insert
