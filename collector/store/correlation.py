"""The SQL of correlation windows and of the collector's own governance events.

A window row is one base-rule match; a tally counts a group's rows since the start of the
window. Rows older than the window are pruned as new ones arrive, in the same transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

from collector.governance.correlations import Tally, WindowEntry
from collector.store import schema
from collector.store.bulk import execute_many
from collector.store.inventory import clean_event, clean_text, dumps

_window = schema.correlation_window
# Groups per tally query: one IN list well under every database's parameter limit.
TALLY_CHUNK = 500


@dataclass(frozen=True)
class Window:
    """A batch's base-rule matches for the correlation windows, and how to keep them."""

    entries: Sequence[WindowEntry]
    seconds: Mapping[str, int]  # each correlation's timespan
    counted: frozenset[str] = frozenset()  # event_count correlations: keep every match


def add_and_tally(
    conn: Connection,
    entries: Sequence[WindowEntry],
    seconds: Mapping[str, int],
    now: datetime,
    counted: frozenset[str] = frozenset(),
) -> dict[tuple[str, str], Tally]:
    """Keep `entries`, drop what fell out of each window, and tally every touched group.

    Correlations in `counted` (event_count) keep every match; the others only need each
    (group, rule, value) once, so a repeat moves its row's time instead of adding a row.
    """
    if not entries:
        return {}
    groups: dict[str, dict[str, None]] = {}
    for e in entries:
        groups.setdefault(e.correlation_id, {})[e.group_key] = None
    if conn.dialect.name == "postgresql":
        _lock_groups(conn, groups)
    plain = [_row(e, None) for e in entries if e.correlation_id in counted]
    latest: dict[tuple[str, str], dict[str, object]] = {}
    for e in entries:
        if e.correlation_id not in counted:
            key = hashlib.sha256(f"{e.group_key}|{e.rule_id}|{e.value}".encode(errors="replace"))
            latest[(e.correlation_id, key.hexdigest())] = _row(e, key.hexdigest())
    execute_many(conn, _plain(), plain)
    execute_many(conn, _distinct_upsert(conn.dialect.name), list(latest.values()))
    tallies: dict[tuple[str, str], Tally] = {}
    for correlation_id, unique in groups.items():
        keys = list(unique)
        since = now - timedelta(seconds=seconds[correlation_id])
        # Pruning depends on the correlation only: once per batch, not once per group.
        conn.execute(
            delete(_window).where(_window.c.correlation_id == correlation_id, _window.c.at < since)
        )
        for start in range(0, len(keys), TALLY_CHUNK):
            chunk = keys[start : start + TALLY_CHUNK]
            tallies.update(_tally(conn, correlation_id, chunk, since))
    return tallies


def _lock_groups(conn: Connection, groups: Mapping[str, Mapping[str, None]]) -> None:
    """Serialise the transactions that add to the same group, on PostgreSQL.

    Without it two of them (two replicas, two workers, two threads) each add their match
    and count the group without seeing the other's uncommitted row, and neither alerts.
    Waiting here, the second counts the first's committed row. Locks are taken in one
    order (of the lock keys), so that two batches sharing groups cannot deadlock; SQLite
    has one writer.
    """
    keys = [f"{correlation}|{group}" for correlation, keys in groups.items() for group in keys]
    conn.exec_driver_sql(
        "SELECT pg_advisory_xact_lock(h) FROM"
        " (SELECT DISTINCT hashtext(k) AS h FROM unnest(%(keys)b::text[]) AS k ORDER BY h) AS s",
        {"keys": keys},
    )


def _tally(
    conn: Connection, correlation_id: str, groups: Sequence[str], since: datetime
) -> dict[tuple[str, str], Tally]:
    """Every group's counts in one grouped query; a group with no rows left counts zero."""
    rows = conn.execute(
        select(
            _window.c.group_sha256,
            func.count(),
            func.count(func.distinct(_window.c.value)),
            func.count(func.distinct(_window.c.rule_id)),
        )
        .where(
            _window.c.correlation_id == correlation_id,
            _window.c.group_sha256.in_(groups),
            _window.c.at >= since,
        )
        .group_by(_window.c.group_sha256)
    ).all()
    found = {row[0]: Tally(int(row[1]), int(row[2]), int(row[3])) for row in rows}
    return {(correlation_id, g): found.get(g, Tally(0, 0, 0)) for g in groups}


def _row(e: WindowEntry, distinct: str | None) -> dict[str, object]:
    return {
        "correlation_id": e.correlation_id,
        "group_sha256": e.group_key,
        "rule_id": e.rule_id,
        "value": clean_text(e.value, 1000),
        "agent_id": e.agent_id,
        "at": e.at,
        "distinct_sha256": distinct,
    }


@cache
def _plain() -> Insert:
    return insert(_window)


@cache
def _distinct_upsert(dialect: str) -> Any:
    statement = sqlite_insert(_window) if dialect == "sqlite" else pg_insert(_window)
    return statement.on_conflict_do_update(
        index_elements=["correlation_id", "distinct_sha256"],
        set_={"at": statement.excluded.at, "agent_id": statement.excluded.agent_id},
    )


def add_collector_event(conn: Connection, event: Mapping[str, object], at: datetime) -> None:
    conn.execute(
        insert(schema.collector_events).values(
            reason=clean_text(str(event.get("event.reason", "")), 255),
            agent_id=clean_text(str(event.get("agent.id", "")), 255),
            at=at,
            body=dumps(clean_event(event)),
        )
    )
