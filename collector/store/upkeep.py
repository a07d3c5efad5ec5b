"""The SQL of upkeep: deleting expired envelopes and events, and the figures /metrics and
/healthz read (reachability, agents enrolled and online)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, delete, exists, func, select, text
from sqlalchemy.engine import Connection

from collector.store import schema

_AGED = {"envelopes": schema.envelopes, "events": schema.events}


def delete_expired(conn: Connection, table_name: str, before: datetime, limit: int) -> int:
    """Delete up to `limit` rows received before `before`, oldest first, sparing each agent's
    newest envelope (the one a resent batch is matched against)."""
    table = _AGED.get(table_name)
    if table is None:
        raise ValueError(f"no retention for table {table_name!r}")
    chosen = select(table.c.id).where(table.c.received_at < before)
    if table is schema.envelopes:
        agents = schema.agents
        chosen = chosen.where(
            ~exists().where(agents.c.agent_id == table.c.agent_id, agents.c.last_seq == table.c.seq)
        )
    ids = list(conn.execute(chosen.order_by(table.c.received_at).limit(limit)).scalars())
    if not ids:
        return 0
    # By key, not `IN (subquery)`: PostgreSQL plans that as a scan of the whole table.
    return int(conn.execute(delete(table).where(table.c.id.in_(ids))).rowcount)


def ping(conn: Connection) -> None:
    conn.execute(text("SELECT 1")).scalar_one()


def agent_counts(conn: Connection, online_since: datetime) -> tuple[int, int]:
    """(enrolled and not revoked, of which seen since `online_since`)."""
    agents = schema.agents
    online = func.sum(case((agents.c.last_seen >= online_since, 1), else_=0))
    row = conn.execute(
        select(func.count(), func.coalesce(online, 0)).where(agents.c.revoked.is_(False))
    ).one()
    return int(row[0]), int(row[1])
