"""Read-only queries for the dashboard and the API, returned as JSON-able dicts."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.engine import Connection

from collector.store import hosts, listings, schema
from collector.store.records import AgentRecord, AgentState

Item = dict[str, object]
_hosts, _models, _processes, _alerts = schema.hosts, schema.models, schema.processes, schema.alerts


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def agent_state(row: Row[Any]) -> AgentState:
    record = AgentRecord(
        agent_id=row.agent_id,
        public_key=bytes(row.public_key),
        host_name=row.host_name,
        os_type=row.os_type,
        group=row.group_name,
        agent_version=row.agent_version,
        enrolled_at=row.enrolled_at,
    )
    return AgentState(record, row.last_seq, bytes(row.last_digest), row.revoked, row.last_seen)


def counts(conn: Connection) -> dict[str, int]:
    def count(query: Any) -> int:
        return int(conn.execute(query).scalar_one())

    return {
        "hosts": count(select(func.count()).select_from(_hosts)),
        # Kept per host by ingest: counting a million model rows here took most of a second.
        "models": count(select(func.coalesce(func.sum(_hosts.c.model_count), 0))),
        "open_alerts": count(select(func.count()).where(_alerts.c.status == "open")),
    }


def list_hosts(conn: Connection) -> list[Item]:
    """Every host, by name (the CLI and exports; the API pages with hosts.hosts_page)."""
    counts = (
        select(_alerts.c.agent_id, func.count().label("n"))
        .where(_alerts.c.status == "open")
        .group_by(_alerts.c.agent_id)
        .subquery()
    )
    query = select(_hosts, func.coalesce(counts.c.n, 0).label("open_alerts")).outerjoin(
        counts, counts.c.agent_id == _hosts.c.agent_id
    )
    rows = conn.execute(query.order_by(_hosts.c.host_name, _hosts.c.id))
    return [hosts.host_item(r) for r in rows]


def list_models(conn: Connection, *, include_removed: bool) -> list[Item]:
    query = select(_models, _hosts.c.host_name).outerjoin(
        _hosts, _hosts.c.agent_id == _models.c.agent_id
    )
    if not include_removed:
        query = query.where(_models.c.removed_at.is_(None))
    rows = conn.execute(query.order_by(_hosts.c.host_name, _models.c.path, _models.c.id))
    return [{**listings.model_item(r), "host.name": r.host_name} for r in rows]


def list_processes(conn: Connection, *, include_stopped: bool) -> list[Item]:
    query = select(_processes, _hosts.c.host_name).outerjoin(
        _hosts, _hosts.c.agent_id == _processes.c.agent_id
    )
    if not include_stopped:
        query = query.where(_processes.c.stopped_at.is_(None))
    rows = conn.execute(
        query.order_by(_hosts.c.host_name, _processes.c.pid, _processes.c.name, _processes.c.id)
    )
    return [{**listings.process_item(r), "host.name": r.host_name} for r in rows]


def list_alerts(conn: Connection, *, status: str | None, limit: int | None) -> list[Item]:
    query = select(_alerts).order_by(_alerts.c.last_seen.desc(), _alerts.c.id.desc())
    if status is not None:
        query = query.where(_alerts.c.status == status)
    if limit is not None:
        query = query.limit(limit)
    return [alert_item(r) for r in conn.execute(query)]


def alert_item(r: Row[Any]) -> Item:
    return {
        "id": r.id,
        "rule_id": r.rule_id,
        "rule_title": r.rule_title,
        "level": r.level,
        "status": r.status,
        "agent_id": r.agent_id,
        "host.name": r.host_name,
        "summary": r.summary,
        "count": r.count,
        "event_seq": r.event_seq,
        "first_seen": iso(r.first_seen),
        "last_seen": iso(r.last_seen),
        "status_by": r.status_by,
        "status_at": iso(r.status_at),
        "status_reason": r.status_reason,
        "suppressed_until": iso(r.suppressed_until),
        "assignee": r.assignee,
    }


def list_events(conn: Connection, *, limit: int, dataset: str | None) -> list[Item]:
    events = schema.events
    query = select(events.c.agent_id, events.c.seq, events.c.received_at, events.c.body)
    if dataset is not None:
        query = query.where(events.c.dataset == dataset)
    rows = conn.execute(query.order_by(events.c.id.desc()).limit(limit))
    return [
        {
            "agent_id": r.agent_id,
            "seq": r.seq,
            "received_at": iso(r.received_at),
            "event": json.loads(r.body),
        }
        for r in rows
    ]


def list_gaps(conn: Connection, *, agent_id: str | None) -> list[Item]:
    gaps = schema.gaps
    query = select(gaps).order_by(gaps.c.id)
    if agent_id is not None:
        query = query.where(gaps.c.agent_id == agent_id)
    return [
        {"agent_id": r.agent_id, "from_seq": r.from_seq, "to_seq": r.to_seq, "at": iso(r.at)}
        for r in conn.execute(query)
    ]
