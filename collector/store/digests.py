"""Keep the per-digest summary (model_digests) and each host's model_count true on ingest.

Counting a million model rows per page view is what made /models and /hosts slow, so
ingest keeps the counts: a batch reads the rows it is about to change, and recounts only
the digests whose live files it adds or removes, and the host's count if it changed.

On PostgreSQL several replicas may ingest at once. A recount locks the digest rows first
(in sha256 order, so two batches cannot deadlock on them), then counts in a later
statement, whose snapshot includes every batch that held those locks before it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import NamedTuple

from sqlalchemy import Update, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

from collector.store import schema
from collector.store.bulk import execute_many
from collector.store.inventory import MODEL_COPIES, InventoryEnd, InventoryRow

_models, _digests, _hosts = schema.models, schema.model_digests, schema.hosts
# A digest's last_seen moves at most this often: every snapshot of a model on 10,000 hosts
# would otherwise write (and on PostgreSQL lock) the same row.
LAST_SEEN_STEP = timedelta(minutes=5)
_ATTRIBUTES = (
    "name",
    "format",
    "kind",
    "risk",
    "license",
    "quantization",
    "architecture",
    "size",
    "parameters",
)
_CHUNK = 500  # keys per IN list


class PriorRow(NamedTuple):
    """A model row as it was before the batch: its digest, whether live, its column copies
    (in MODEL_COPIES order)."""

    sha256: str
    live: bool
    copies: tuple[object, ...] = ()


Prior = dict[bytes, PriorRow]  # by path_sha256


@dataclass
class Seen:
    """A digest as a batch saw it: the latest file's columns, and when it was first and last."""

    columns: Mapping[str, object]
    first: datetime
    last: datetime


@dataclass
class DigestChanges:
    """What a batch did to digests: the ones it saw, and the ones whose live files changed."""

    seen: dict[str, Seen] = field(default_factory=dict)
    recount: set[str] = field(default_factory=set)
    host_changed: bool = False


def digest_changes(
    rows: Iterable[InventoryRow], ends: Iterable[InventoryEnd], prior: Prior
) -> DigestChanges:
    """Pure: compare each model row before the batch (`prior`) with after it."""
    changes = DigestChanges()
    for row in rows:
        sha256 = str(row.latest.columns.get("sha256") or "")
        if sha256:
            _saw(changes.seen, sha256, row)
        _moved(changes, prior.get(row.latest.key_sha256), (sha256, row.ended_at is None))
    for end in ends:
        _moved(changes, prior.get(end.key_sha256), ("", False))
    return changes


def _saw(seen: dict[str, Seen], sha256: str, row: InventoryRow) -> None:
    known = seen.get(sha256)
    if known is None:
        seen[sha256] = Seen(row.latest.columns, row.first_seen, row.last_seen)
        return
    known.first = min(known.first, row.first_seen)
    if row.last_seen >= known.last:
        known.columns, known.last = row.latest.columns, row.last_seen


def _moved(changes: DigestChanges, before: PriorRow | None, after: tuple[str, bool]) -> None:
    old_sha, was_live = (before.sha256, before.live) if before is not None else ("", False)
    new_sha, is_live = after
    counted_before = old_sha if was_live else ""
    counted_after = new_sha if is_live else ""
    if counted_before != counted_after:
        changes.recount.update(s for s in (counted_before, counted_after) if s)
    changes.host_changed |= was_live != is_live


def prior_state(conn: Connection, agent_id: str, keys: Sequence[bytes]) -> Prior:
    """This agent's model rows with these path keys, as they are before the batch."""
    m = _models.c
    copies = [m[name] for name in MODEL_COPIES]
    query = select(m.path_sha256, m.removed_at, m.sha256, *copies).where(
        m.agent_id == agent_id, m.path_sha256.in_(bindparam("keys", expanding=True))
    )
    prior: Prior = {}
    for start in range(0, len(keys), _CHUNK):
        for row in conn.execute(query, {"keys": list(keys[start : start + _CHUNK])}):
            key, removed_at, sha256, *values = row  # copies in MODEL_COPIES order
            prior[bytes(key)] = PriorRow(sha256, removed_at is None, tuple(values))
    return prior


def unchanged(row: InventoryRow, prior: Prior) -> bool:
    """Pure: the batch leaves this model row live with the same column copies, so that only
    its fields and last_seen need writing (no index holds those)."""
    before = prior.get(row.latest.key_sha256)
    if before is None or not before.live or row.ended_at is not None:
        return False
    return before.copies == tuple(row.latest.columns[name] for name in MODEL_COPIES)


def apply(conn: Connection, agent_id: str, changes: DigestChanges) -> None:
    """Write what `changes` says: new digests, last_seen, recounts, the host's model_count."""
    if changes.recount:
        _lock(conn, sorted(changes.recount))
    if changes.seen:
        # Read first, so that a snapshot of known models writes nothing here most times.
        known = _last_seen(conn, sorted(changes.seen))
        rows = [_digest_row(sha, seen) for sha, seen in sorted(changes.seen.items())]
        fresh = [row for row in rows if row["sha256"] not in known]
        stale = [row for row in rows if _stale(known.get(str(row["sha256"])), row)]
        execute_many(conn, _insert_new(conn.dialect.name), fresh)  # a race: nothing
        execute_many(conn, _touch(), [_touch_row(row) for row in stale])
    if changes.recount:
        shas = sorted(changes.recount)
        for start in range(0, len(shas), _CHUNK):
            conn.execute(_recount(), {"shas": shas[start : start + _CHUNK]})
    if changes.host_changed:
        recount_host(conn, agent_id)


def _last_seen(conn: Connection, shas: Sequence[str]) -> dict[str, datetime]:
    query = select(_digests.c.sha256, _digests.c.last_seen).where(
        _digests.c.sha256.in_(bindparam("shas", expanding=True))
    )
    known: dict[str, datetime] = {}
    for start in range(0, len(shas), _CHUNK):
        for sha256, last_seen in conn.execute(query, {"shas": list(shas[start : start + _CHUNK])}):
            known[sha256] = last_seen
    return known


def _stale(last_seen: datetime | None, row: Mapping[str, object]) -> bool:
    at = row["last_seen"]
    assert isinstance(at, datetime)
    return last_seen is not None and last_seen < at - LAST_SEEN_STEP


def recount_host(conn: Connection, agent_id: str) -> None:
    live = (
        select(func.count())
        .where(_models.c.agent_id == agent_id, _models.c.removed_at.is_(None))
        .scalar_subquery()
    )
    conn.execute(update(_hosts).where(_hosts.c.agent_id == agent_id).values(model_count=live))


def rebuild(conn: Connection) -> None:
    """Recompute every digest row and host count from the models table (after a migration
    or a bulk load); attributes come from one live file of each digest."""
    conn.execute(_digests.delete())
    pick = {name: func.max(_models.c[name]) for name in _ATTRIBUTES}
    live = _models.c.removed_at.is_(None)
    grouped = (
        select(
            _models.c.sha256,
            *[value.label(name) for name, value in pick.items()],
            func.count(func.distinct(_models.c.agent_id)).label("host_count"),
            func.count().label("file_count"),
            func.min(_models.c.first_seen).label("first_seen"),
            func.max(_models.c.last_seen).label("last_seen"),
        )
        .where(_models.c.sha256 != "", live)
        .group_by(_models.c.sha256)
    )
    columns = ["sha256", *_ATTRIBUTES, "host_count", "file_count", "first_seen", "last_seen"]
    conn.execute(_digests.insert().from_select(columns, grouped))
    counted = (
        select(func.count()).where(_models.c.agent_id == _hosts.c.agent_id, live).scalar_subquery()
    )
    conn.execute(update(_hosts).values(model_count=counted))


def _digest_row(sha256: str, seen: Seen) -> dict[str, object]:
    row: dict[str, object] = {name: seen.columns[name] for name in _ATTRIBUTES}
    row.update(sha256=sha256, first_seen=seen.first, last_seen=seen.last)
    row.update(host_count=0, file_count=0)
    return row


def _touch_row(row: Mapping[str, object]) -> dict[str, object]:
    at = row["last_seen"]
    assert isinstance(at, datetime)
    values = {f"b_{name}": row[name] for name in _ATTRIBUTES}
    return {**values, "b_sha256": row["sha256"], "b_at": at, "b_stale": at - LAST_SEEN_STEP}


def _lock(conn: Connection, shas: Sequence[str]) -> None:
    # FOR UPDATE is PostgreSQL's; SQLite has one writer and SQLAlchemy leaves the clause out.
    query = (
        select(_digests.c.id)
        .where(_digests.c.sha256.in_(bindparam("shas", expanding=True)))
        .order_by(_digests.c.sha256)
        .with_for_update()
    )
    for start in range(0, len(shas), _CHUNK):
        conn.execute(query, {"shas": list(shas[start : start + _CHUNK])}).all()


@cache
def _insert_new(dialect: str) -> Insert:
    if dialect == "sqlite":
        return sqlite_insert(_digests).on_conflict_do_nothing(index_elements=["sha256"])
    return pg_insert(_digests).on_conflict_do_nothing(index_elements=["sha256"])


@cache
def _touch() -> Update:
    """last_seen and the attributes of the latest file, when last_seen is a step behind."""
    values = {name: bindparam(f"b_{name}", type_=_digests.c[name].type) for name in _ATTRIBUTES}
    at = bindparam("b_at", type_=_digests.c.last_seen.type)
    return (
        update(_digests)
        .where(_digests.c.sha256 == bindparam("b_sha256"))
        .where(_digests.c.last_seen < bindparam("b_stale", type_=_digests.c.last_seen.type))
        .values(last_seen=at, **values)
    )


@cache
def _recount() -> Update:
    mine = (_models.c.sha256 == _digests.c.sha256, _models.c.removed_at.is_(None))
    files = select(func.count()).where(*mine).scalar_subquery()
    hosts = select(func.count(func.distinct(_models.c.agent_id))).where(*mine).scalar_subquery()
    return (
        update(_digests)
        .where(_digests.c.sha256.in_(bindparam("shas", expanding=True)))
        .values(file_count=files, host_count=hosts)
    )
