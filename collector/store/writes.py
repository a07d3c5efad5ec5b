"""The SQL of one ingest transaction: events, gaps, alerts and the inventory.

Each table gets one executemany per batch, of a statement compiled once per dialect.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Dialect, Table, bindparam, case, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import StatementError
from sqlalchemy.sql.base import ReadOnlyColumnCollection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert, Update, UpdateBase
from sqlalchemy.sql.elements import KeyedColumnElement

from collector.store import schema
from collector.store.inventory import (
    InventoryEnd,
    InventoryRow,
    clean_event,
    clean_text,
    dedup_sha256,
    dumps,
    host_update,
    inventory_change,
    label,
    net_changes,
)
from collector.store.records import Gap, NewAlert, StoredEvent

Excluded = ReadOnlyColumnCollection[str, KeyedColumnElement[Any]]
Row = dict[str, object]
# Per inventory table: its key column and the column that says the row has gone.
_INVENTORY = {
    "models": (schema.models, "path_sha256", "removed_at"),
    "processes": (schema.processes, "key_sha256", "stopped_at"),
}


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
    _upsert_alerts(conn, alerts)
    _update_inventory(conn, agent_id, events, cleaned, now)


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


def _upsert_alerts(conn: Connection, alerts: Sequence[NewAlert]) -> None:
    """A new alert opens with count 1; a repeat counts up and reopens a resolved one."""
    first: dict[bytes, NewAlert] = {}
    last: dict[bytes, NewAlert] = {}
    count: Counter[bytes] = Counter()
    for alert in alerts:
        key = dedup_sha256(alert.dedup_key)
        first.setdefault(key, alert)
        last[key] = alert
        count[key] += 1
    rows = [_alert_row(key, first[key], last[key], count[key]) for key in first]
    _execute_many(conn, _alert_upsert(conn.dialect.name), rows)


def _alert_row(key: bytes, first: NewAlert, last: NewAlert, count: int) -> Row:
    """A key's alerts in a batch as upserting them one by one would leave the row:
    the first inserts it, each later one counts up and overwrites the latest fields."""
    return {
        "dedup_sha256": key,
        "dedup_key": clean_text(first.dedup_key),
        "rule_id": clean_text(first.rule_id),
        "rule_title": clean_text(last.rule_title),
        "level": clean_text(last.level),
        "status": "open",
        "agent_id": first.agent_id,
        "host_name": clean_text(last.host_name),
        "summary": clean_text(last.summary),
        "event_seq": last.event_seq,
        "count": count,
        "first_seen": first.at,
        "last_seen": last.at,
    }


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
    for name in _INVENTORY:
        rows = [_inventory_row(agent_id, row) for row in upserts if row.latest.table == name]
        _execute_many(conn, _inventory_upsert(conn.dialect.name, name), rows)
        gone = [_end_row(agent_id, end) for end in ends if end.table == name]
        _execute_many(conn, _inventory_end(name), gone)


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
    return values


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
def _alert_upsert(dialect: str) -> Insert:
    alerts = schema.alerts
    return _upsert(
        dialect,
        alerts,
        ["dedup_sha256"],
        lambda new: {
            "count": alerts.c.count + new.count,
            "status": case((alerts.c.status == "resolved", "open"), else_=alerts.c.status),
            "last_seen": new.last_seen,
            "event_seq": new.event_seq,
            "summary": new.summary,
            "host_name": new.host_name,
            "rule_title": new.rule_title,
            "level": new.level,
        },
    )


@cache
def _inventory_upsert(dialect: str, name: str) -> Insert:
    table, key, end_column = _INVENTORY[name]
    return _upsert(
        dialect,
        table,
        ["agent_id", key],
        lambda new: {
            "fields": new.fields,
            "last_seen": new.last_seen,
            end_column: new[end_column],
        },
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


# Running many rows at the driver level: SQLAlchemy's executemany spends ~10 µs a row
# building and converting parameters, more than SQLite spends storing the row.

Convert = Callable[[Any], Any]


@dataclass(frozen=True)
class _Prepared:
    """A statement compiled for one dialect, and how rows become the driver's parameters."""

    sql: str
    names: tuple[str, ...]  # bind names, in the driver's order if positional
    positional: bool
    constants: Row  # converted values that the statement binds itself
    converters: tuple[tuple[int, Convert], ...]  # by index into names
    timestamps: tuple[tuple[int, Convert], ...]  # converted once per distinct value

    def parameters(self, rows: Sequence[Row]) -> list[Any]:
        # A batch repeats a few timestamps many times, and converting one is slow.
        seen: list[dict[object, object]] = [{} for _ in self.timestamps]
        pick = itemgetter(*self.names)
        converted: list[Any] = []
        for row in rows:
            values = list(pick({**self.constants, **row} if self.constants else row))
            for i, convert in self.converters:
                values[i] = convert(values[i])
            for (i, convert), memo in zip(self.timestamps, seen, strict=True):
                value = values[i]
                try:
                    values[i] = memo[value]
                except KeyError:
                    values[i] = memo[value] = convert(value)
            if self.positional:
                converted.append(tuple(values))
            else:
                converted.append(dict(zip(self.names, values, strict=True)))
        return converted


@lru_cache(maxsize=64)
def _prepare(dialect: Dialect, statement: UpdateBase, keys: tuple[str, ...]) -> _Prepared:
    compiled = statement.compile(dialect=dialect, column_keys=list(keys), for_executemany=True)
    assert isinstance(compiled, SQLCompiler)
    ordered = compiled.positiontup if compiled.positional else compiled.bind_names.values()
    assert ordered is not None
    names = tuple(ordered)
    assert len(names) > 1  # so that itemgetter(*names) gives a tuple
    constants: Row = {}
    converters: list[tuple[int, Convert]] = []
    timestamps: list[tuple[int, Convert]] = []
    for bind, name in compiled.bind_names.items():
        convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if not bind.required:
            value = bind.effective_value
            constants[name] = value if convert is None else convert(value)
            continue
        if convert is None:
            continue
        places = timestamps if isinstance(bind.type, schema.UTCDateTime) else converters
        places.extend((i, convert) for i, n in enumerate(names) if n == name)
    return _Prepared(
        compiled.string,
        names,
        compiled.positional,
        constants,
        tuple(converters),
        tuple(timestamps),
    )


def _execute_many(conn: Connection, statement: UpdateBase, rows: Sequence[Row]) -> None:
    """conn.execute(statement, rows), with the rows' parameters converted here."""
    if not rows:
        return
    prepared = _prepare(conn.dialect, statement, tuple(rows[0]))
    try:
        parameters = prepared.parameters(rows)
    except Exception as exc:  # a value its type refuses, wrapped as conn.execute would
        raise StatementError(str(exc), prepared.sql, None, exc) from exc
    conn.exec_driver_sql(prepared.sql, parameters)
