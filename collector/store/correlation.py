"""The SQL of correlation windows and of the collector's own governance events.

A window row is one base-rule match; a tally counts a group's rows since the start of the
window. Rows older than the window are pruned as new ones arrive, in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection

from collector.governance.correlations import Tally, WindowEntry
from collector.store import schema
from collector.store.inventory import clean_event, clean_text, dumps

_window = schema.correlation_window


def add_and_tally(
    conn: Connection, entries: Sequence[WindowEntry], seconds: Mapping[str, int], now: datetime
) -> dict[tuple[str, str], Tally]:
    """Keep `entries`, drop what fell out of each window, and tally every touched group."""
    if not entries:
        return {}
    conn.execute(
        insert(_window),
        [
            {
                "correlation_id": e.correlation_id,
                "group_sha256": e.group_key,
                "rule_id": e.rule_id,
                "value": clean_text(e.value, 1000),
                "agent_id": e.agent_id,
                "at": e.at,
            }
            for e in entries
        ],
    )
    tallies = {}
    for correlation_id, group in dict.fromkeys((e.correlation_id, e.group_key) for e in entries):
        since = now - timedelta(seconds=seconds[correlation_id])
        conn.execute(
            delete(_window).where(_window.c.correlation_id == correlation_id, _window.c.at < since)
        )
        row = conn.execute(
            select(
                func.count(),
                func.count(func.distinct(_window.c.value)),
                func.count(func.distinct(_window.c.rule_id)),
            ).where(
                _window.c.correlation_id == correlation_id,
                _window.c.group_sha256 == group,
                _window.c.at >= since,
            )
        ).one()
        tallies[(correlation_id, group)] = Tally(int(row[0]), int(row[1]), int(row[2]))
    return tallies


def add_collector_event(conn: Connection, event: Mapping[str, object], at: datetime) -> None:
    conn.execute(
        insert(schema.collector_events).values(
            reason=clean_text(str(event.get("event.reason", "")), 255),
            agent_id=clean_text(str(event.get("agent.id", "")), 255),
            at=at,
            body=dumps(clean_event(event)),
        )
    )


def list_collector_events(conn: Connection, limit: int) -> list[dict[str, object]]:
    table = schema.collector_events
    rows = conn.execute(select(table).order_by(table.c.id.desc()).limit(limit))
    return [{"at": r.at.isoformat(), "event": json.loads(r.body)} for r in rows]
