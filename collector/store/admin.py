"""The SQL of administration: enrollment and API tokens, agent revocation, and their lists.

A change made with an `actor` (a person, a token, the CLI's user) writes its audit row in
the same transaction; None is for seeding tests and benchmarks, which nobody did.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.engine import Connection

from collector.paging import Listing, Page
from collector.store import audit, delivery, grants, schema
from collector.store.inventory import clean_text
from collector.store.pages import Sort, keyset_page
from collector.store.queries import iso

_agents, _enroll, _api = schema.agents, schema.enrollment_tokens, schema.api_tokens
AGENT_SORTS = {
    "host": Sort((_agents.c.host_name, _agents.c.id), ("text", "int")),
    "enrolled_at": Sort((_agents.c.enrolled_at, _agents.c.id), ("time", "int")),
    # Never seen: its enrollment is its last sign of life.
    "last_seen": Sort(
        (func.coalesce(_agents.c.last_seen, _agents.c.enrolled_at), _agents.c.id), ("time", "int")
    ),
    "last_seq": Sort((_agents.c.last_seq, _agents.c.id), ("int", "int")),
}
ENROLLMENT_SORTS = {"created_at": Sort((_enroll.c.created_at, _enroll.c.id), ("time", "int"))}
API_SORTS = {"created_at": Sort((_api.c.created_at, _api.c.id), ("time", "int"))}


def add_enrollment_token(
    conn: Connection,
    *,
    token_id: str,
    secret_sha256: bytes,
    group: str,
    created_at: datetime,
    expires_at: datetime | None,
    max_uses: int,
    actor: str | None,
) -> None:
    group = clean_text(group, 255)
    conn.execute(
        insert(_enroll).values(
            token_id=token_id,
            secret_sha256=secret_sha256,
            group_name=group,
            created_at=created_at,
            expires_at=expires_at,
        )
    )
    if max_uses != 1:
        grants.add_limits(conn, token_id, max_uses)
    if actor is not None:
        after = {"group": group, "max_uses": max_uses, "expires_at": iso(expires_at)}
        audit.record(
            conn,
            actor=actor,
            action="enrollment_token.create",
            target=f"enrollment-token:{token_id}",
            before=None,
            after=after,
            at=created_at,
        )


def revoke_enrollment_token(
    conn: Connection, token_id: str, now: datetime, actor: str | None
) -> bool:
    uses = schema.enrollment_token_uses
    before = conn.execute(select(uses.c.revoked_at).where(uses.c.token_id == token_id)).first()
    if not grants.revoke_enrollment(conn, token_id, now):
        return False
    if actor is not None:
        audit.record(
            conn,
            actor=actor,
            action="enrollment_token.revoke",
            target=f"enrollment-token:{token_id}",
            before={"revoked": before is not None and before.revoked_at is not None},
            after={"revoked": True},
            at=now,
        )
    return True


def add_api_token(
    conn: Connection,
    *,
    token_id: str,
    secret_sha256: bytes,
    role: str,
    created_at: datetime,
    expires_at: datetime | None,
    actor: str | None,
) -> None:
    conn.execute(
        insert(_api).values(
            token_id=token_id,
            secret_sha256=secret_sha256,
            role=role,
            created_at=created_at,
            expires_at=expires_at,
        )
    )
    if actor is not None:
        audit.record(
            conn,
            actor=actor,
            action="api_token.create",
            target=f"api-token:{token_id}",
            before=None,
            after={"role": role, "expires_at": iso(expires_at)},
            at=created_at,
        )


def revoke_api_token(conn: Connection, token_id: str, now: datetime, actor: str | None) -> bool:
    was = grants.api_revoked(conn, token_id)
    if not grants.revoke_api(conn, token_id, now):
        return False
    if actor is not None:
        audit.record(
            conn,
            actor=actor,
            action="api_token.revoke",
            target=f"api-token:{token_id}",
            before={"revoked": was},
            after={"revoked": True},
            at=now,
        )
    return True


def revoke_agent(conn: Connection, agent_id: str, now: datetime, actor: str | None) -> bool:
    row = conn.execute(
        select(_agents.c.revoked).where(_agents.c.agent_id == agent_id).with_for_update()
    ).first()
    if row is None:
        return False
    conn.execute(update(_agents).where(_agents.c.agent_id == agent_id).values(revoked=True))
    if actor is not None:
        audit.record(
            conn,
            actor=actor,
            action="agent.revoke",
            target=f"agent:{agent_id}",
            before={"revoked": bool(row.revoked)},
            after={"revoked": True},
            at=now,
        )
    return True


# lists


def page_agents(conn: Connection, group: str | None, listing: Listing) -> Page:
    """Agents with their delivery counters (one query for the page's agents)."""
    query = select(_agents)
    if group is not None:
        query = query.where(_agents.c.group_name == clean_text(group))
    page = keyset_page(conn, query, AGENT_SORTS[listing.sort], listing, agent_item)
    counters = delivery.counters_of(conn, [str(a["agent_id"]) for a in page.items])
    for item in page.items:
        item["delivery"] = counters.get(str(item["agent_id"]), {})
    return page


def agent_item(r: Row[Any]) -> dict[str, object]:
    return {
        "agent_id": r.agent_id,
        "host.name": r.host_name,
        "host.os.type": r.os_type,
        "host.group": r.group_name,
        "agent.version": r.agent_version,
        "public_key": bytes(r.public_key).hex(),
        "enrolled_at": iso(r.enrolled_at),
        "last_seq": int(r.last_seq),
        "revoked": bool(r.revoked),
        "last_seen": iso(r.last_seen),
    }


def page_enrollment_tokens(conn: Connection, listing: Listing) -> Page:
    sort = ENROLLMENT_SORTS[listing.sort]
    return keyset_page(conn, grants.enrollment_query(), sort, listing, grants.enrollment_item)


def page_api_tokens(conn: Connection, listing: Listing) -> Page:
    return keyset_page(conn, grants.api_query(), API_SORTS[listing.sort], listing, grants.api_item)
