"""Listings of what agents did: events (newest first) and the agents themselves."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import ColumnElement, Row, func, select
from sqlalchemy.engine import Connection

from collector.paging import Listing, Page
from collector.store import schema
from collector.store.filters import AgentFilter, EventFilter
from collector.store.keyset import fetch_page
from collector.store.listings import EPOCH, contains, iso

Item = dict[str, object]
_events, _agents = schema.events, schema.agents

EVENT_COLUMNS = ["id", "agent_id", "seq", "dataset", "action", "received_at", "event"]
AGENT_COLUMNS = [
    "agent_id",
    "host.name",
    "host.os.type",
    "host.group",
    "agent.version",
    "public_key",
    "enrolled_at",
    "last_seq",
    "revoked",
    "last_seen",
    "delivery",
]


def event_sorts() -> dict[str, tuple[ColumnElement[Any], ...]]:
    return {"id": (_events.c.id,)}


def events_page(conn: Connection, listing: Listing, where: EventFilter) -> Page:
    """Events in the order received; filtered by dataset (ix_events_dataset_id) or agent
    (ix_events_agent_id_id), each index ending in id so that a page is a range scan."""
    e = _events.c
    query = select(e.id, e.agent_id, e.seq, e.dataset, e.action, e.received_at, e.body)
    if where.dataset:
        query = query.where(e.dataset == where.dataset)
    if where.agent_id:
        query = query.where(e.agent_id == where.agent_id)
    key = event_sorts()[listing.sort]
    return fetch_page(conn, query, key, listing, event_item, EVENT_COLUMNS)


def event_item(r: Row[Any]) -> Item:
    return {
        "id": r.id,
        "agent_id": r.agent_id,
        "seq": r.seq,
        "dataset": r.dataset,
        "action": r.action,
        "received_at": iso(r.received_at),
        "event": json.loads(r.body),
    }


def agent_sorts() -> dict[str, tuple[ColumnElement[Any], ...]]:
    a = _agents.c
    seen = func.coalesce(a.last_seen, EPOCH, type_=schema.UTCDateTime())
    return {
        "enrolled_at": (a.enrolled_at, a.id),
        "name": (a.host_name, a.id),
        "last_seen": (seen, a.id),
        "last_seq": (a.last_seq, a.id),
        "agent_id": (a.agent_id,),
    }


def agents_page(conn: Connection, listing: Listing, where: AgentFilter) -> Page:
    """Enrolled agents, their chain state and delivery counters (one query for the page)."""
    a = _agents.c
    query = select(_agents)
    if where.q:
        query = query.where(contains(a.host_name, where.q) | a.agent_id.startswith(where.q))
    if where.group:
        query = query.where(a.group_name == where.group)
    if where.revoked is not None:
        query = query.where(a.revoked.is_(where.revoked))
    key = agent_sorts()[listing.sort]
    page = fetch_page(conn, query, key, listing, agent_item, AGENT_COLUMNS)
    counters = delivery_counters(conn, [str(item["agent_id"]) for item in page.items])
    for item in page.items:
        item["delivery"] = counters.get(str(item["agent_id"]), {})
    return page


def agent_item(r: Row[Any]) -> Item:
    return {
        "agent_id": r.agent_id,
        "host.name": r.host_name,
        "host.os.type": r.os_type,
        "host.group": r.group_name,
        "agent.version": r.agent_version,
        "public_key": bytes(r.public_key).hex(),
        "enrolled_at": iso(r.enrolled_at),
        "last_seq": r.last_seq,
        "revoked": r.revoked,
        "last_seen": iso(r.last_seen),
    }


def delivery_counters(conn: Connection, agent_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per agent of `agent_ids`: counter name -> count."""
    if not agent_ids:
        return {}
    table = schema.delivery_counters
    query = select(table.c.agent_id, table.c.name, table.c.count.label("n")).where(
        table.c.agent_id.in_(sorted(set(agent_ids)))
    )
    result: dict[str, dict[str, int]] = {}
    for row in conn.execute(query):
        result.setdefault(row.agent_id, {})[row.name] = int(row.n)
    return result
