"""The hosts listing and one host's page: inventory row, enrollment, counts, latest health.

Open alerts are counted for a page's hosts after it is read (an index range per host),
unless the page is sorted by them; model counts are kept per host by ingest.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import ColumnElement, Row, func, literal, select
from sqlalchemy.engine import Connection

from collector.paging import Listing, Page
from collector.store import schema
from collector.store.filters import HostFilter
from collector.store.keyset import fetch_page
from collector.store.listings import EPOCH, Item, Key, contains, iso

_hosts, _alerts, _processes = schema.hosts, schema.alerts, schema.processes

HOST_COLUMNS = [
    "agent_id",
    "host.name",
    "host.os.type",
    "host.group",
    "agent.version",
    "last_seen",
    "model_count",
    "open_alerts",
]


def _open_alerts() -> Any:
    return (
        select(_alerts.c.agent_id, func.count().label("n"))
        .where(_alerts.c.status == "open")
        .group_by(_alerts.c.agent_id)
        .subquery("open_alerts")
    )


def host_sorts(open_count: ColumnElement[int]) -> dict[str, Key]:
    h = _hosts.c
    seen = func.coalesce(h.last_seen, EPOCH, type_=schema.UTCDateTime())
    return {
        "name": (h.host_name, h.id),
        "os": (h.os_type, h.host_name, h.id),
        "group": (h.group_name, h.host_name, h.id),
        "version": (h.agent_version, h.host_name, h.id),
        "models": (h.model_count, h.id),
        "open_alerts": (open_count, h.id),
        "last_seen": (seen, h.id),
    }


def hosts_page(conn: Connection, listing: Listing, where: HostFilter) -> Page:
    """Hosts with their live model count (kept by ingest) and open alerts: counted for the
    page's hosts after it, unless the page is sorted by them (then grouped once, joined)."""
    query = select(_hosts)
    open_count: ColumnElement[int] = literal(0)
    if listing.sort == "open_alerts":
        counts = _open_alerts()
        open_count = func.coalesce(counts.c.n, 0)
        query = select(_hosts, open_count.label("open_alerts")).outerjoin(
            counts, counts.c.agent_id == _hosts.c.agent_id
        )
    if where.q:
        query = query.where(contains(_hosts.c.host_name, where.q))
    if where.group:
        query = query.where(_hosts.c.group_name == where.group)
    if where.os:
        query = query.where(_hosts.c.os_type == where.os)
    key = host_sorts(open_count)[listing.sort]
    page = fetch_page(conn, query, key, listing, host_item, HOST_COLUMNS)
    counted = open_alert_counts(conn, [str(item["agent_id"]) for item in page.items])
    for item in page.items:
        item["open_alerts"] = counted.get(str(item["agent_id"]), 0)
    return page


def open_alert_counts(conn: Connection, agent_ids: list[str]) -> dict[str, int]:
    """Open alerts per agent of `agent_ids` (an index range per agent, never the whole table)."""
    if not agent_ids:
        return {}
    a = _alerts.c
    query = (
        select(a.agent_id, func.count().label("n"))
        .where(a.status == "open", a.agent_id.in_(sorted(set(agent_ids))))
        .group_by(a.agent_id)
    )
    return {r.agent_id: int(r.n) for r in conn.execute(query)}


def host_item(r: Row[Any]) -> Item:
    return {
        "agent_id": r.agent_id,
        "host.name": r.host_name,
        "host.os.type": r.os_type,
        "host.group": r.group_name,
        "agent.version": r.agent_version,
        "last_seen": iso(r.last_seen),
        "model_count": int(r.model_count),
        "open_alerts": int(r._mapping.get("open_alerts", 0)),
    }


def host(conn: Connection, agent_id: str) -> Item | None:
    """One host: its inventory row, enrollment, counts and latest agent health; None if unknown."""
    open_alerts = (
        select(func.count())
        .where(_alerts.c.agent_id == agent_id, _alerts.c.status == "open")
        .scalar_subquery()
    )
    query = select(_hosts, open_alerts.label("open_alerts")).where(_hosts.c.agent_id == agent_id)
    row = conn.execute(query).first()
    if row is None:
        return None
    item = host_item(row)
    agents = schema.agents
    agent = conn.execute(select(agents).where(agents.c.agent_id == agent_id)).first()
    if agent is not None:
        item["enrollment"] = {
            "enrolled_at": iso(agent.enrolled_at),
            "agent.version": agent.agent_version,
            "host.group": agent.group_name,
            "last_seq": agent.last_seq,
            "revoked": agent.revoked,
            "public_key": bytes(agent.public_key).hex(),
        }
    running = select(func.count()).where(
        _processes.c.agent_id == agent_id, _processes.c.stopped_at.is_(None)
    )
    item["process_count"] = int(conn.execute(running).scalar_one())
    item["health"] = latest_health(conn, agent_id)
    return item


def open_alerts_of(conn: Connection, agent_id: str, limit: int) -> list[Item]:
    """The host's open alerts, most recently seen first."""
    a = _alerts.c
    # Sorted by an expression no index holds (last_seen is never NULL): by the column,
    # SQLite (no statistics) walked every open alert newest first to find the host's, 1.2 s
    # for a host whose alerts are old among 640,000; so it reads the host's own through
    # (status, agent_id) and sorts those.
    seen = func.coalesce(a.last_seen, EPOCH, type_=schema.UTCDateTime())
    query = (
        select(a.id, a.rule_id, a.rule_title, a.level, a.summary, a.count, a.last_seen)
        .where(a.agent_id == agent_id, a.status == "open")
        .order_by(seen.desc(), a.id.desc())
        .limit(limit)
    )
    return [
        {
            "id": r.id,
            "rule_id": r.rule_id,
            "rule_title": r.rule_title,
            "level": r.level,
            "summary": r.summary,
            "count": r.count,
            "last_seen": iso(r.last_seen),
        }
        for r in conn.execute(query)
    ]


def latest_health(conn: Connection, agent_id: str) -> Item | None:
    """The agent's last shadowai.agent_health event: its time and agent.health.* fields."""
    events = schema.events
    row = conn.execute(
        select(events.c.received_at, events.c.body)
        .where(events.c.agent_id == agent_id, events.c.dataset == "shadowai.agent_health")
        .order_by(events.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    body = json.loads(row.body)
    fields = {k: v for k, v in body.items() if k.startswith("agent.health.")}
    return {"received_at": iso(row.received_at), "@timestamp": body.get("@timestamp"), **fields}
