"""The SQL of the audit log: who changed what, when, from what to what.

`record` is called inside the transaction of the change it describes; the log is only ever
appended to. Before and after hold the changed fields as JSON, never a secret.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select
from sqlalchemy.engine import Connection

from collector.paging import Listing, Page
from collector.store import schema
from collector.store.inventory import clean_text
from collector.store.pages import Sort, keyset_page

_log = schema.audit_log
SORTS = {"id": Sort((_log.c.id,), ("int",))}
Fields = Mapping[str, object]  # the changed fields, as JSON-able values


@dataclass(frozen=True)
class AuditFilter:
    """Exact matches; None: any."""

    actor: str | None = None
    action: str | None = None
    target: str | None = None


def record(
    conn: Connection,
    *,
    actor: str,
    action: str,
    target: str,
    before: Fields | None,
    after: Fields | None,
    at: datetime,
) -> None:
    conn.execute(
        insert(_log).values(
            at=at,
            actor=clean_text(actor, 255),
            action=action,
            target=clean_text(target, 255),
            before=_dumps(before),
            after=_dumps(after),
        )
    )


def _dumps(fields: Fields | None) -> str | None:
    if fields is None:
        return None
    return json.dumps(fields, sort_keys=True, default=str, ensure_ascii=False)


def page(conn: Connection, where: AuditFilter, listing: Listing) -> Page:
    """Newest first by default; each filter an indexed equality."""
    query = select(_log)
    for column, value in (
        (_log.c.actor, where.actor),
        (_log.c.action, where.action),
        (_log.c.target, where.target),
    ):
        if value is not None:
            query = query.where(column == clean_text(value, 255))
    return keyset_page(conn, query, SORTS[listing.sort], listing, item)


def item(row: Row[Any]) -> dict[str, object]:
    return {
        "id": int(row.id),
        "at": row.at.isoformat(),
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
        "before": None if row.before is None else json.loads(row.before),
        "after": None if row.after is None else json.loads(row.after),
    }
