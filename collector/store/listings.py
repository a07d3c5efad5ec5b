"""The inventory listings, one keyset page at a time: hosts, model files, digests, processes.

Every sort is a key of indexed columns ending in a unique one, so that a page costs the
same however deep it is; host names are looked up for a page's rows in one query after it,
never joined into the sort.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, select
from sqlalchemy.engine import Connection

from collector.paging import Listing, Page
from collector.store import schema, textsearch
from collector.store.filters import DigestFilter, ModelFilter, ProcessFilter
from collector.store.inventory import MODEL_FIELDS, PROCESS_FIELDS
from collector.store.keyset import fetch_page

Item = dict[str, object]
Key = tuple[ColumnElement[Any], ...]
_hosts, _models, _digests = schema.hosts, schema.models, schema.model_digests
_processes, _alerts = schema.processes, schema.alerts
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Every model item has these keys (None when the agent did not say), and any others it sent.
_MODEL_KNOWN = (*MODEL_FIELDS, "ai.model.kind", "ai.model.risk", "ai.model.origin")
MODEL_COLUMNS = [
    "agent_id",
    "host.name",
    *_MODEL_KNOWN,
    "first_seen",
    "last_seen",
    "removed_at",
]
DIGEST_COLUMNS = [
    "sha256",
    "name",
    "format",
    "kind",
    "risk",
    "license",
    "quantization",
    "architecture",
    "size",
    "parameters",
    "hosts",
    "files",
    "first_seen",
    "last_seen",
]
PROCESS_COLUMNS = [
    "agent_id",
    "host.name",
    *PROCESS_FIELDS,
    "first_seen",
    "last_seen",
    "stopped_at",
]


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def contains(column: ColumnElement[str], text: str) -> ColumnElement[bool]:
    """Case-insensitive substring, with % and _ in `text` taken literally."""
    return column.icontains(text, autoescape=True)


def host_names(conn: Connection, agent_ids: Iterable[str]) -> dict[str, str]:
    wanted = sorted(set(agent_ids))
    if not wanted:
        return {}
    query = select(_hosts.c.agent_id, _hosts.c.host_name).where(_hosts.c.agent_id.in_(wanted))
    return {r.agent_id: r.host_name for r in conn.execute(query)}


def _with_hosts(conn: Connection, page: Page) -> Page:
    names = host_names(conn, (str(item["agent_id"]) for item in page.items))
    for item in page.items:
        item["host.name"] = names.get(str(item["agent_id"]))
    return page


# model files


def model_sorts() -> dict[str, Key]:
    m = _models.c
    return {
        "path": (m.path_key, m.id),
        "name": (m.name, m.id),
        "format": (m.format, m.path_key, m.id),
        "risk": (m.risk, m.path_key, m.id),
        "size": (m.size, m.id),
        "parameters": (m.parameters, m.id),
        "first_seen": (m.first_seen, m.id),
        "agent_id": (m.agent_id, m.path_key, m.id),
    }


def models_query(conn: Connection, where: ModelFilter) -> Select[Any]:
    m = _models.c
    query = select(_models)
    if not where.include_removed:
        query = query.where(m.removed_at.is_(None))
    for column, value in [
        (m.agent_id, where.agent_id),
        (m.format, where.format),
        (m.risk, where.risk),
        (m.kind, where.kind),
        (m.origin, where.origin),
        (m.sha256, where.sha256),
    ]:
        if value:
            query = query.where(column == value)
    if where.host:
        query = query.where(m.agent_id.in_(_agents_named(where.host)))
    if where.q:
        exact = contains(m.path_key, where.q) | contains(m.name, where.q)
        live = not where.include_removed
        query = query.where(text_matches(conn, where.q, exact, live_only=live))
    return query


def text_matches(
    conn: Connection, q: str, exact: ColumnElement[bool], *, live_only: bool = True
) -> ColumnElement[bool]:
    """`exact` (the path or name contains `q`), narrowed first to the trigram index's few
    candidates if it has them (of live rows: a listing with removed rows too scans).

    `exact` is never the index's own expression, on purpose: when the text is common,
    PostgreSQL underestimated its matches, read all 82,000 through the trigram index and
    sorted them (600 ms), where walking the listing's index finds a page in a few thousand.
    """
    found = textsearch.candidates(conn, q) if live_only else None
    return exact if found is None else _models.c.id.in_(found) & exact


def _agents_named(host_name: str) -> Select[Any]:
    return select(_hosts.c.agent_id).where(_hosts.c.host_name == host_name)


def models_page(conn: Connection, listing: Listing, where: ModelFilter) -> Page:
    """Model files: every field of the latest event about each, and its host's name."""
    key = model_sorts()[listing.sort]
    page = fetch_page(conn, models_query(conn, where), key, listing, model_item, MODEL_COLUMNS)
    return _with_hosts(conn, page)


def model_item(r: Row[Any]) -> Item:
    item = inventory_item(r, _MODEL_KNOWN)
    item["file.path"] = r.path
    item["removed_at"] = iso(r.removed_at)
    return item


def inventory_item(row: Row[Any], known: tuple[str, ...]) -> Item:
    item: Item = {"agent_id": row.agent_id, "host.name": None}
    item.update(dict.fromkeys(known))
    item.update(json.loads(row.fields))
    item["first_seen"], item["last_seen"] = iso(row.first_seen), iso(row.last_seen)
    return item


# digests


def digest_sorts() -> dict[str, Key]:
    d = _digests.c
    return {
        "name": (d.name, d.sha256),
        "format": (d.format, d.sha256),
        "kind": (d.kind, d.sha256),
        "risk": (d.risk, d.sha256),
        "license": (d.license, d.sha256),
        "size": (d.size, d.sha256),
        "parameters": (d.parameters, d.sha256),
        "hosts": (d.host_count, d.sha256),
        "files": (d.file_count, d.sha256),
        "first_seen": (d.first_seen, d.sha256),
        "last_seen": (d.last_seen, d.sha256),
        "sha256": (d.sha256,),
    }


def digests_page(conn: Connection, listing: Listing, where: DigestFilter) -> Page:
    """One row per content digest with live files: what it is and how widespread."""
    d = _digests.c
    query = select(_digests).where(d.file_count > 0)
    for column, value in [
        (d.format, where.format),
        (d.kind, where.kind),
        (d.risk, where.risk),
        (d.license, where.license),
    ]:
        if value:
            query = query.where(column == value)
    if where.q:
        prefix = where.q.lower()
        named = contains(d.name, where.q)
        query = query.where(named | d.sha256.startswith(prefix, autoescape=True))
    key = digest_sorts()[listing.sort]
    return fetch_page(conn, query, key, listing, digest_item, DIGEST_COLUMNS)


def digest(conn: Connection, sha256: str) -> Item | None:
    row = conn.execute(select(_digests).where(_digests.c.sha256 == sha256)).first()
    return None if row is None else digest_item(row)


def digest_item(r: Row[Any]) -> Item:
    def number(value: int) -> int | None:
        return None if value < 0 else value

    return {
        "sha256": r.sha256,
        "name": r.name or None,
        "format": r.format or None,
        "kind": r.kind or None,
        "risk": r.risk or None,
        "license": r.license or None,
        "quantization": r.quantization or None,
        "architecture": r.architecture or None,
        "size": number(r.size),
        "parameters": number(r.parameters),
        "hosts": int(r.host_count),
        "files": int(r.file_count),
        "first_seen": iso(r.first_seen),
        "last_seen": iso(r.last_seen),
    }


# processes


def process_sorts() -> dict[str, Key]:
    p = _processes.c
    return {
        "name": (p.name, p.id),
        "pid": (p.pid, p.id),
        "runtime": (p.runtime, p.name, p.id),
        "gpu_memory": (p.gpu_memory, p.id),
        "gpu_utilization": (p.gpu_utilization, p.id),
        "first_seen": (p.first_seen, p.id),
        "last_seen": (p.last_seen, p.id),
        "agent_id": (p.agent_id, p.name, p.id),
    }


def processes_page(conn: Connection, listing: Listing, where: ProcessFilter) -> Page:
    p = _processes.c
    query = select(_processes)
    if not where.include_stopped:
        query = query.where(p.stopped_at.is_(None))
    if where.agent_id:
        query = query.where(p.agent_id == where.agent_id)
    if where.host:
        query = query.where(p.agent_id.in_(_agents_named(where.host)))
    if where.runtime:
        query = query.where(p.runtime == where.runtime)
    if where.q:
        query = query.where(contains(p.name, where.q))
    key = process_sorts()[listing.sort]
    page = fetch_page(conn, query, key, listing, process_item, PROCESS_COLUMNS)
    return _with_hosts(conn, page)


def process_item(r: Row[Any]) -> Item:
    item = inventory_item(r, PROCESS_FIELDS)
    item["process.pid"], item["process.name"] = r.pid, r.name
    item["stopped_at"] = iso(r.stopped_at)
    return item
