"""The SQL of enrollment and API tokens: redeem with use counts, list, revoke, expire.

A token's row in enrollment_token_uses gives its use count and revocation; a token
created before that table existed has none and stays single-use.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, insert, select, update
from sqlalchemy.engine import Connection

from collector.store import schema
from collector.store.queries import iso

Item = dict[str, object]


def add_limits(conn: Connection, token_id: str, max_uses: int) -> None:
    conn.execute(
        insert(schema.enrollment_token_uses).values(token_id=token_id, max_uses=max_uses, uses=0)
    )


def redeem(conn: Connection, *, token_id: str, secret_sha256: bytes, now: datetime) -> str | None:
    """Count one use and return the token's group; None if unknown, spent, expired or wrong."""
    tokens, uses = schema.enrollment_tokens, schema.enrollment_token_uses
    row = conn.execute(
        select(tokens).where(tokens.c.token_id == token_id).with_for_update()
    ).first()
    if row is None or not hmac.compare_digest(bytes(row.secret_sha256), secret_sha256):
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    limits = conn.execute(select(uses).where(uses.c.token_id == token_id)).first()
    if limits is None:  # single use: the used_at guard holds even where FOR UPDATE is a no-op
        marked = conn.execute(
            update(tokens)
            .where(tokens.c.id == row.id, tokens.c.used_at.is_(None))
            .values(used_at=now)
        )
        return str(row.group_name) if marked.rowcount == 1 else None
    counted = conn.execute(
        update(uses)
        .where(
            uses.c.id == limits.id,
            uses.c.revoked_at.is_(None),
            uses.c.uses < uses.c.max_uses,
        )
        .values(uses=uses.c.uses + 1)
    )
    if counted.rowcount != 1:
        return None
    conn.execute(update(tokens).where(tokens.c.id == row.id).values(used_at=now))
    return str(row.group_name)


def usable(conn: Connection, *, token_id: str, secret_sha256: bytes, now: datetime) -> bool:
    """Whether redeem would succeed, without counting a use."""
    tokens, uses = schema.enrollment_tokens, schema.enrollment_token_uses
    row = conn.execute(select(tokens).where(tokens.c.token_id == token_id)).first()
    if row is None or not hmac.compare_digest(bytes(row.secret_sha256), secret_sha256):
        return False
    if row.expires_at is not None and row.expires_at <= now:
        return False
    limits = conn.execute(select(uses).where(uses.c.token_id == token_id)).first()
    if limits is None:
        return row.used_at is None
    return limits.revoked_at is None and int(limits.uses) < int(limits.max_uses)


def enrollment_query() -> Select[Any]:
    tokens, uses = schema.enrollment_tokens, schema.enrollment_token_uses
    return select(tokens, uses.c.max_uses, uses.c.uses, uses.c.revoked_at).outerjoin(
        uses, uses.c.token_id == tokens.c.token_id
    )


def list_enrollment(conn: Connection) -> list[Item]:
    tokens = schema.enrollment_tokens
    query = enrollment_query().order_by(tokens.c.created_at, tokens.c.id)
    return [enrollment_item(r) for r in conn.execute(query)]


def enrollment_item(r: Row[Any]) -> Item:
    single = r.max_uses is None
    max_uses = 1 if single else int(r.max_uses)
    used = (1 if r.used_at is not None else 0) if single else int(r.uses)
    return {
        "token_id": r.token_id,
        "group": r.group_name,
        "created_at": iso(r.created_at),
        "expires_at": iso(r.expires_at),
        "last_used_at": iso(r.used_at),
        "max_uses": max_uses,
        "uses": used,
        "uses_left": max(0, max_uses - used),
        "revoked": r.revoked_at is not None,
    }


def revoke_enrollment(conn: Connection, token_id: str, now: datetime) -> bool:
    tokens, uses = schema.enrollment_tokens, schema.enrollment_token_uses
    if conn.execute(select(tokens.c.id).where(tokens.c.token_id == token_id)).first() is None:
        return False
    updated = conn.execute(
        update(uses).where(uses.c.token_id == token_id).values(revoked_at=now)
    ).rowcount
    if updated == 0:  # a single-use token: record it spent and revoked
        conn.execute(insert(uses).values(token_id=token_id, max_uses=0, uses=0, revoked_at=now))
    return True


def api_query() -> Select[Any]:
    tokens, revoked = schema.api_tokens, schema.api_token_revocations
    return select(
        tokens.c.id,
        tokens.c.token_id,
        tokens.c.role,
        tokens.c.created_at,
        tokens.c.expires_at,
        revoked.c.revoked_at,
    ).outerjoin(revoked, revoked.c.token_id == tokens.c.token_id)


def list_api(conn: Connection) -> list[Item]:
    tokens = schema.api_tokens
    query = api_query().order_by(tokens.c.created_at, tokens.c.id)
    return [api_item(r) for r in conn.execute(query)]


def api_item(r: Row[Any]) -> Item:
    return {
        "token_id": r.token_id,
        "role": r.role,
        "created_at": iso(r.created_at),
        "expires_at": iso(r.expires_at),
        "revoked": r.revoked_at is not None,
    }


def api_role(conn: Connection, *, token_id: str, secret_sha256: bytes, now: datetime) -> str | None:
    """The role of a token whose secret matches, not revoked and not expired; else None."""
    tokens = schema.api_tokens
    row = conn.execute(
        select(tokens.c.secret_sha256, tokens.c.role, tokens.c.expires_at).where(
            tokens.c.token_id == token_id
        )
    ).first()
    if row is None or not hmac.compare_digest(bytes(row.secret_sha256), secret_sha256):
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    return None if api_revoked(conn, token_id) else str(row.role)


def revoke_api(conn: Connection, token_id: str, now: datetime) -> bool:
    tokens, revoked = schema.api_tokens, schema.api_token_revocations
    if conn.execute(select(tokens.c.id).where(tokens.c.token_id == token_id)).first() is None:
        return False
    if conn.execute(select(revoked.c.id).where(revoked.c.token_id == token_id)).first() is None:
        conn.execute(insert(revoked).values(token_id=token_id, revoked_at=now))
    return True


def api_revoked(conn: Connection, token_id: str) -> bool:
    revoked = schema.api_token_revocations
    return (
        conn.execute(select(revoked.c.id).where(revoked.c.token_id == token_id)).first() is not None
    )
