"""The fleet at a glance (the overview's figures) and search across hosts, models and paths.

Figures come from the small tables ingest keeps (hosts, model_digests) and from alerts,
never from counting model files, so the overview costs the same at a million files.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Row, case, func, select
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
    groups = _digest_groups(conn)
    return {
        "hosts": _hosts_seen(conn, now - SILENT_AFTER),
        "models": _scalar(conn, select(func.coalesce(func.sum(_hosts.c.model_count), 0))),
        "digests": sum(g.digests for g in groups),
        "open_alerts": _scalar(conn, select(func.count()).where(_alerts.c.status == "open")),
        "by_kind": _by(groups, lambda g: g.kind),
        "by_format": _by(groups, lambda g: g.format),
        "by_size": _by_size(groups),
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


class Group(NamedTuple):
    """Digests with live files of one (kind, format): how many, their files, and of those
    the files with no size and with a size under each bound of SIZE_BUCKETS."""

    kind: str
    format: str
    digests: int
    files: int
    below: tuple[int, ...]  # size < 0, then < each bound, cumulative


def _digest_groups(conn: Connection) -> list[Group]:
    """Every digest figure in one read of the digests, grouped in the order of the
    (kind, format, size, file_count) index, which holds all it needs: the four figures
    each read the whole table (630,000 digests: 0.3 s each)."""
    d = _digests.c
    bounds = [0, *(bound for _, bound in SIZE_BUCKETS if bound)]
    below = [func.sum(case((d.size < bound, d.file_count), else_=0)) for bound in bounds]
    query = (
        select(d.kind, d.format, func.count(), func.sum(d.file_count), *below)
        .where(d.file_count > 0)
        .group_by(d.kind, d.format)
    )
    return [
        Group(r[0], r[1], int(r[2]), int(r[3]), tuple(int(n) for n in r[4:]))
        for r in conn.execute(query)
    ]


def _by(groups: list[Group], value: Callable[[Group], str]) -> list[Item]:
    """Digests and live files per value, most files first; '' reads as unknown."""
    totals: dict[str, list[int]] = {}
    for g in groups:
        counts = totals.setdefault(value(g), [0, 0])
        counts[0] += g.digests
        counts[1] += g.files
    ordered = sorted(totals.items(), key=lambda kv: (-kv[1][1], kv[0]))
    return [{"label": v or "unknown", "digests": n, "files": f} for v, (n, f) in ordered]


def _by_size(groups: list[Group]) -> list[Item]:
    """Live files per size bucket; the unknown size only if some file has it."""
    below = [sum(g.below[i] for g in groups) for i in range(len(SIZE_BUCKETS))]
    files = [*below, sum(g.files for g in groups)]
    labels = ["unknown", *(name for name, _ in SIZE_BUCKETS)]
    counts = [files[0], *(files[i] - files[i - 1] for i in range(1, len(files)))]
    shown = [{"label": name, "files": n} for name, n in zip(labels, counts, strict=True)]
    return shown if shown[0]["files"] else shown[1:]


def _alerts_per_day(conn: Connection, now: datetime) -> list[Item]:
    """Alerts first raised on each of the last ALERT_DAYS days (UTC), oldest first.

    One count per day, each a range of the first_seen index: grouping by a day computed
    from each row sorted them all (640,000 alerts raised in one day: 4 s on SQLite)."""
    first = now.astimezone(UTC).date() - timedelta(days=ALERT_DAYS - 1)
    days = [first + timedelta(days=i) for i in range(ALERT_DAYS + 1)]
    starts = [datetime(d.year, d.month, d.day, tzinfo=UTC) for d in days]
    seen = _alerts.c.first_seen
    counts = [
        select(func.count()).where(seen >= start, seen < end).scalar_subquery()
        for start, end in itertools.pairwise(starts)
    ]
    found = conn.execute(select(*counts)).one()
    shown = zip(days[:ALERT_DAYS], found, strict=True)
    return [{"day": d.isoformat(), "alerts": int(n)} for d, n in shown]


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
