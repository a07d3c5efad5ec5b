"""The SQL of alert triage: the filtered, sorted alert listing, and analysts' changes.

Every change here is a person's (or a token's): each writes its audit row in the same
transaction. The row is read FOR UPDATE first, so the audit's `before` is what was replaced
even with two analysts at work on PostgreSQL; SQLite's writer lock does the same there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from collector.paging import Listing, Page
from collector.store import alerting, audit, schema
from collector.store.inventory import clean_text
from collector.store.pages import Sort, keyset_page
from collector.store.queries import alert_item, iso
from collector.store.triage_values import AlertFilter, BulkChange, StatusChange

_alerts, _comments = schema.alerts, schema.alert_comments
_id = _alerts.c.id
SORTS = {
    "last_seen": Sort((_alerts.c.last_seen, _id), ("time", "int")),
    "first_seen": Sort((_alerts.c.first_seen, _id), ("time", "int")),
    "level": Sort((_alerts.c.level_rank, _id), ("int32", "int")),
    "rule": Sort((_alerts.c.rule_id, _id), ("text", "int")),
    "host": Sort((_alerts.c.host_name, _id), ("text", "int")),
    "count": Sort((_alerts.c.count, _id), ("int", "int")),
}
COMMENT_SORTS = {"id": Sort((_comments.c.id,), ("int",))}


@dataclass(frozen=True)
class BulkResult:
    changed: list[int]
    missing: list[int]


def page_alerts(conn: Connection, where: AlertFilter, listing: Listing) -> Page:
    query = select(_alerts)
    for column, value in (
        (_alerts.c.rule_id, where.rule),
        (_alerts.c.level, where.level),
        (_alerts.c.status, where.status),
        (_alerts.c.assignee, where.assignee),
    ):
        if value is not None:
            query = query.where(column == clean_text(value))
    if where.host is not None:
        host = clean_text(where.host)
        query = query.where(or_(_alerts.c.agent_id == host, _alerts.c.host_name == host))
    if where.unassigned:
        query = query.where(_alerts.c.assignee.is_(None))
    return keyset_page(conn, query, SORTS[listing.sort], listing, alert_item)


def get_alert(conn: Connection, alert_id: int) -> dict[str, object] | None:
    row = conn.execute(select(_alerts).where(_id == alert_id)).first()
    return None if row is None else alert_item(row)


def _locked(conn: Connection, alert_id: int) -> Row[Any, Any, Any] | None:
    query = select(_alerts.c.status, _alerts.c.suppressed_until, _alerts.c.assignee)
    return conn.execute(query.where(_id == alert_id).with_for_update()).first()


def change_status(
    conn: Connection, alert_id: int, change: StatusChange, by: str, at: datetime
) -> bool:
    """Set the status, record it in the alert's history and the audit log; False: no alert."""
    row = _locked(conn, alert_id)
    if row is None:
        return False
    alerting.set_status(conn, alert_id, change.status, by, at, change.reason, change.until)
    audit.record(
        conn,
        actor=by,
        action="alert.status",
        target=f"alert:{alert_id}",
        before={"status": row.status, "suppressed_until": iso(row.suppressed_until)},
        after={
            "status": change.status,
            "suppressed_until": iso(change.until),
            "reason": change.reason,
        },
        at=at,
    )
    return True


def assign(conn: Connection, alert_id: int, assignee: str | None, by: str, at: datetime) -> bool:
    """Give the alert to `assignee` (None: to nobody); False: no alert."""
    row = _locked(conn, alert_id)
    if row is None:
        return False
    shown = None if assignee is None else clean_text(assignee, 255)
    conn.execute(update(_alerts).where(_id == alert_id).values(assignee=shown))
    audit.record(
        conn,
        actor=by,
        action="alert.assign",
        target=f"alert:{alert_id}",
        before={"assignee": row.assignee},
        after={"assignee": shown},
        at=at,
    )
    return True


def bulk(
    conn: Connection, ids: Sequence[int], change: BulkChange, by: str, at: datetime
) -> BulkResult:
    """The same change to each alert, with one audit row per alert and kind of change."""
    changed: list[int] = []
    missing: list[int] = []
    for alert_id in ids:
        done = True
        if change.status is not None:
            done = change_status(conn, alert_id, change.status, by, at)
        if done and change.assign:
            done = assign(conn, alert_id, change.assignee, by, at)
        (changed if done else missing).append(alert_id)
    return BulkResult(changed, missing)


def add_comment(
    conn: Connection, alert_id: int, text: str, by: str, at: datetime
) -> dict[str, object] | None:
    """The stored comment; None if there is no such alert."""
    if conn.execute(select(_id).where(_id == alert_id)).first() is None:
        return None
    values = {
        "alert_id": alert_id,
        "at": at,
        "actor": clean_text(by, 255),
        "text": clean_text(text),
    }
    result = conn.execute(insert(_comments).values(values))
    key = result.inserted_primary_key
    assert key is not None
    comment_id = int(key[0])
    audit.record(
        conn,
        actor=by,
        action="alert.comment",
        target=f"alert:{alert_id}",
        before=None,
        after={"comment_id": comment_id, "text": values["text"]},
        at=at,
    )
    return _comment_item(comment_id, values)


def comments(conn: Connection, alert_id: int, listing: Listing) -> Page:
    query = select(_comments).where(_comments.c.alert_id == alert_id)
    return keyset_page(
        conn,
        query,
        COMMENT_SORTS[listing.sort],
        listing,
        lambda r: _comment_item(int(r.id), r._mapping),
    )


def _comment_item(comment_id: int, values: Any) -> dict[str, object]:
    return {
        "id": comment_id,
        "alert_id": int(values["alert_id"]),
        "at": values["at"].isoformat(),
        "actor": values["actor"],
        "text": values["text"],
    }


def rule_counts(conn: Connection) -> dict[str, dict[str, object]]:
    """Per rule id: alerts raised (total), open now, and the last match; one grouped scan."""
    query = select(
        _alerts.c.rule_id,
        func.count().label("total"),
        func.count().filter(_alerts.c.status == "open").label("open"),
        func.max(_alerts.c.last_seen).label("last_match"),
    ).group_by(_alerts.c.rule_id)
    return {
        str(r.rule_id): {
            "alerts_total": int(r.total),
            "alerts_open": int(r.open),
            "last_match": iso(r.last_match),
        }
        for r in conn.execute(query)
    }
