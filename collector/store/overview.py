"""The fleet at a glance (the overview's figures) and search across hosts, models and paths.

Figures come from the small tables ingest keeps (hosts, model_digests) and from alerts,
never from counting model files, so the overview costs the same at a million files.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, Text, case, func, select
from sqlalchemy.engine import Connection

from collector.paging import Listing, Page
from collector.store import schema
from collector.store.keyset import fetch_page
from collector.store.listings import contains, digest_item, text_matches

Item = dict[str, object]
_hosts, _digests, _alerts, _models = (
    schema.hosts,
    schema.model_digests,
    schema.alerts,
    schema.models,
)
SILENT_AFTER = timedelta(minutes=15)
ALERT_DAYS = 30
TOP_MODELS = 10
# Upper bounds in bytes, as decimal units read: the last bucket takes everything above.
SIZE_BUCKETS = (
    ("< 100 MB", 100 * 10**6),
    ("100 MB - 1 GB", 10**9),
    ("1 - 4 GB", 4 * 10**9),
    ("4 - 16 GB", 16 * 10**9),
    ("16 - 64 GB", 64 * 10**9),
    (">= 64 GB", None),
)
SEARCH_COLUMNS = ["type", "label", "detail", "agent_id", "sha256"]
_HEX = frozenset("0123456789abcdef")


def overview(conn: Connection, now: datetime) -> dict[str, Any]:
    """Counts and the series behind each chart of the overview page."""
    return {
        "hosts": _hosts_seen(conn, now - SILENT_AFTER),
        "models": _scalar(conn, select(func.coalesce(func.sum(_hosts.c.model_count), 0))),
        "digests": _scalar(conn, select(func.count()).where(_digests.c.file_count > 0)),
        "open_alerts": _scalar(conn, select(func.count()).where(_alerts.c.status == "open")),
        "by_kind": _by(conn, _digests.c.kind),
        "by_format": _by(conn, _digests.c.format),
        "by_size": _by_size(conn),
        "alerts_per_day": _alerts_per_day(conn, now),
        "top_models": _top_models(conn),
    }


def _scalar(conn: Connection, query: Any) -> int:
    return int(conn.execute(query).scalar_one())


def _hosts_seen(conn: Connection, since: datetime) -> dict[str, int]:
    online = func.sum(case((_hosts.c.last_seen >= since, 1), else_=0))
    row = conn.execute(select(func.count().label("total"), online.label("online"))).one()
    total, seen = int(row.total), int(row.online or 0)
    return {"total": total, "online": seen, "silent": total - seen}


def _by(conn: Connection, column: ColumnElement[str]) -> list[Item]:
    """Digests and live files per value of `column`, most files first; '' reads as unknown."""
    files = func.sum(_digests.c.file_count)
    query = (
        select(column.label("value"), func.count().label("digests"), files.label("files"))
        .where(_digests.c.file_count > 0)
        .group_by(column)
        .order_by(files.desc(), column)
    )
    return [
        {"label": r.value or "unknown", "digests": int(r.digests), "files": int(r.files)}
        for r in conn.execute(query)
    ]


def _by_size(conn: Connection) -> list[Item]:
    size = _digests.c.size
    whens: list[tuple[ColumnElement[bool], int]] = [(size < 0, 0)]
    whens += [(size < bound, i + 1) for i, (_, bound) in enumerate(SIZE_BUCKETS) if bound]
    bucket = case(*whens, else_=len(SIZE_BUCKETS))
    query = (
        select(bucket.label("bucket"), func.sum(_digests.c.file_count).label("files"))
        .select_from(_digests)
        .where(_digests.c.file_count > 0)
        .group_by(bucket)
    )
    found = {int(r.bucket): int(r.files) for r in conn.execute(query)}
    labels = ["unknown", *(name for name, _ in SIZE_BUCKETS)]
    shown = [{"label": name, "files": found.get(i, 0)} for i, name in enumerate(labels)]
    return shown if shown[0]["files"] else shown[1:]


def _alerts_per_day(conn: Connection, now: datetime) -> list[Item]:
    """Alerts first raised on each of the last ALERT_DAYS days (UTC), oldest first."""
    today = now.date()
    first = today - timedelta(days=ALERT_DAYS - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=now.tzinfo)
    day = _day(_alerts.c.first_seen, conn.dialect.name)
    query = (
        select(day.label("day"), func.count().label("n"))
        .where(_alerts.c.first_seen >= since)
        .group_by(day)
    )
    found = {str(r.day): int(r.n) for r in conn.execute(query)}
    days = [first + timedelta(days=i) for i in range(ALERT_DAYS)]
    return [{"day": d.isoformat(), "alerts": found.get(d.isoformat(), 0)} for d in days]


def _day(column: ColumnElement[Any], dialect: str) -> ColumnElement[str]:
    if dialect == "sqlite":  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff', in UTC
        return func.substr(column, 1, 10, type_=Text)
    return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD", type_=Text)


def _top_models(conn: Connection) -> list[Item]:
    """The digests on most hosts; ties by sha256, descending, so that PostgreSQL reads the
    (host_count, sha256) index backwards (ascending ties made it sort every digest)."""
    d = _digests.c
    query = (
        select(_digests)
        .where(d.file_count > 0)
        .order_by(d.host_count.desc(), d.sha256.desc())
        .limit(TOP_MODELS)
    )
    return [digest_item(r) for r in conn.execute(query)]


# search


def search(conn: Connection, q: str, kind: str, listing: Listing) -> Page:
    """Hits of one kind (host, model, digest, path) for `q`, a page at a time."""
    if kind == "digest" and not looks_like_digest(q):
        return Page(items=[], columns=SEARCH_COLUMNS)
    if kind == "path":
        exact = contains(_models.c.path_key, q)
        query, key, item = _path_hits(q, text_matches(conn, q, exact))
    else:
        query, key, item = _SEARCHES[kind](q)
    return fetch_page(conn, query, key, listing, item, SEARCH_COLUMNS)


def looks_like_digest(q: str) -> bool:
    """Worth a digest lookup: 4 to 64 hex digits."""
    return 4 <= len(q) <= 64 and _HEX.issuperset(q.lower())


def _host_hits(q: str) -> Any:
    h = _hosts.c
    query = select(h.agent_id, h.host_name, h.os_type, h.group_name).where(
        contains(h.host_name, q) | h.agent_id.startswith(q, autoescape=True)
    )

    def item(r: Row[Any]) -> Item:
        detail = f"{r.os_type}, group {r.group_name}"
        return _hit("host", r.host_name, detail, agent_id=r.agent_id)

    return query, (h.host_name, h.id), item


def _model_hits(q: str) -> Any:
    d = _digests.c
    # Text is found in no empty name: saying so lets the walk of the name index start past
    # the unnamed digests, which sort first (630,000 of them took 0.3-0.5 s on SQLite).
    query = select(_digests).where(d.file_count > 0, d.name > "", contains(d.name, q))

    def item(r: Row[Any]) -> Item:
        detail = f"{r.format or 'unknown format'} on {r.host_count} hosts"
        return _hit("model", r.name, detail, sha256=r.sha256)

    return query, (d.name, d.sha256), item


def _digest_hits(q: str) -> Any:
    d = _digests.c
    prefix = q.lower()
    # A range, not LIKE 'prefix%', which neither SQLite (LIKE ignores case) nor PostgreSQL
    # (outside the C collation) reads from an index: digests are lowercase hex, and every
    # one that starts with the prefix sorts before prefix + "g".
    query = select(_digests).where(d.file_count > 0, d.sha256 >= prefix, d.sha256 < prefix + "g")

    def item(r: Row[Any]) -> Item:
        return _hit("digest", r.sha256, r.name or "unnamed", sha256=r.sha256)

    return query, (d.sha256,), item


def _path_hits(q: str, matches: ColumnElement[bool]) -> Any:
    m = _models.c
    query = select(m.agent_id, m.path, m.sha256, m.name).where(m.removed_at.is_(None), matches)

    def item(r: Row[Any]) -> Item:
        return _hit("path", r.path, r.name or "", agent_id=r.agent_id, sha256=r.sha256 or None)

    return query, (m.path_key, m.id), item


def _hit(kind: str, label: str, detail: str, **ids: str | None) -> Item:
    return {"type": kind, "label": label, "detail": detail, "agent_id": None, "sha256": None, **ids}


_SEARCHES = {"host": _host_hits, "model": _model_hits, "digest": _digest_hits}
