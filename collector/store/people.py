"""The SQL of people: dashboard users, their sessions, failed-login counts and the audit log.

Passwords arrive hashed and session tokens as their sha256: nothing here can log anyone in.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from collector.store import audit as audit_log
from collector.store import schema
from collector.store.queries import iso

if TYPE_CHECKING:
    from collector.store.store import Store

Item = dict[str, object]
_users, _sessions, _failures = schema.users, schema.sessions, schema.login_failures


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    password_hash: str
    disabled: bool


@dataclass(frozen=True)
class SessionRow:
    """A session joined with its user, as the dashboard checks it on every request."""

    user_id: int
    username: str
    role: str
    disabled: bool
    created_at: datetime
    last_seen: datetime
    expires_at: datetime
    csrf_token: str


# users


def add_user(
    conn: Connection, *, username: str, role: str, password_hash: str, now: datetime
) -> None:
    conn.execute(
        insert(_users).values(
            username=username,
            role=role,
            password_hash=password_hash,
            created_at=now,
            disabled=False,
        )
    )


def user(conn: Connection, username: str) -> User | None:
    row = conn.execute(select(_users).where(_users.c.username == username)).first()
    if row is None:
        return None
    return User(int(row.id), row.username, row.role, row.password_hash, bool(row.disabled))


def list_users(conn: Connection) -> list[Item]:
    rows = conn.execute(select(_users).order_by(_users.c.username))
    return [
        {
            "username": r.username,
            "role": r.role,
            "created_at": iso(r.created_at),
            "disabled": bool(r.disabled),
            "last_login": iso(r.last_login),
        }
        for r in rows
    ]


def set_disabled(conn: Connection, username: str, disabled: bool) -> bool | None:
    """The previous value, or None if there is no such user; a disabled user's sessions end."""
    found = user(conn, username)
    if found is None:
        return None
    conn.execute(update(_users).where(_users.c.id == found.id).values(disabled=disabled))
    if disabled:
        conn.execute(delete(_sessions).where(_sessions.c.user_id == found.id))
    return found.disabled


def set_password_hash(conn: Connection, username: str, password_hash: str) -> bool:
    """Replace the hash and end every session of the user; False if there is no such user."""
    found = user(conn, username)
    if found is None:
        return False
    conn.execute(update(_users).where(_users.c.id == found.id).values(password_hash=password_hash))
    conn.execute(delete(_sessions).where(_sessions.c.user_id == found.id))
    return True


def record_login(conn: Connection, user_id: int, now: datetime, rehashed: str | None) -> None:
    values: Item = {"last_login": now}
    if rehashed is not None:
        values["password_hash"] = rehashed
    conn.execute(update(_users).where(_users.c.id == user_id).values(values))


# sessions


def add_session(
    conn: Connection,
    *,
    token_sha256: bytes,
    user_id: int,
    csrf_token: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    conn.execute(
        insert(_sessions).values(
            token_sha256=token_sha256,
            user_id=user_id,
            created_at=now,
            last_seen=now,
            expires_at=expires_at,
            csrf_token=csrf_token,
        )
    )


def session(conn: Connection, token_sha256: bytes) -> SessionRow | None:
    query = (
        select(
            _sessions.c.user_id,
            _users.c.username,
            _users.c.role,
            _users.c.disabled,
            _sessions.c.created_at,
            _sessions.c.last_seen,
            _sessions.c.expires_at,
            _sessions.c.csrf_token,
        )
        .join(_users, _users.c.id == _sessions.c.user_id)
        .where(_sessions.c.token_sha256 == token_sha256)
    )
    row = conn.execute(query).first()
    if row is None:
        return None
    return SessionRow(
        int(row.user_id),
        row.username,
        row.role,
        bool(row.disabled),
        row.created_at,
        row.last_seen,
        row.expires_at,
        row.csrf_token,
    )


def touch_session(conn: Connection, token_sha256: bytes, now: datetime) -> None:
    conn.execute(
        update(_sessions).where(_sessions.c.token_sha256 == token_sha256).values(last_seen=now)
    )


def end_session(conn: Connection, token_sha256: bytes) -> bool:
    ended = conn.execute(delete(_sessions).where(_sessions.c.token_sha256 == token_sha256))
    return ended.rowcount > 0


def purge(conn: Connection, now: datetime, idle: timedelta, forget: timedelta) -> None:
    """Drop sessions past either limit and failure counts older than `forget`."""
    conn.execute(
        delete(_sessions).where(
            or_(_sessions.c.expires_at <= now, _sessions.c.last_seen <= now - idle)
        )
    )
    conn.execute(delete(_failures).where(_failures.c.last_failure_at <= now - forget))


# failed logins


def failures(conn: Connection, keys: Sequence[str]) -> dict[str, tuple[int, datetime]]:
    rows = conn.execute(select(_failures).where(_failures.c.key.in_(list(keys))))
    return {r.key: (int(r.failures), r.last_failure_at) for r in rows}


def add_failure(conn: Connection, key: str, now: datetime, forget: timedelta) -> int:
    """Count one failure for `key` (restarting after `forget` without one); the new count.

    The row is created if missing, then locked, so that replicas counting at once add up.
    """
    insert_ = sqlite_insert(_failures) if conn.dialect.name == "sqlite" else pg_insert(_failures)
    conn.execute(
        insert_.values(key=key, failures=0, last_failure_at=now).on_conflict_do_nothing(
            index_elements=["key"]
        )
    )
    row = conn.execute(
        select(_failures.c.failures, _failures.c.last_failure_at)
        .where(_failures.c.key == key)
        .with_for_update()
    ).one()
    count = 1 if row.last_failure_at <= now - forget else int(row.failures) + 1
    conn.execute(
        update(_failures)
        .where(_failures.c.key == key)
        .values(failures=count, last_failure_at=max(now, row.last_failure_at))
    )
    return count


def clear_failures(conn: Connection, key: str) -> None:
    conn.execute(delete(_failures).where(_failures.c.key == key))


# audit


def add_audit(
    conn: Connection,
    *,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    before: audit_log.Fields | None,
    after: audit_log.Fields | None,
) -> None:
    audit_log.record(
        conn, actor=actor, action=action, target=target, before=before, after=after, at=at
    )


def list_audit(conn: Connection, limit: int) -> list[Item]:
    log = schema.audit_log
    rows = conn.execute(select(log).order_by(log.c.id.desc()).limit(limit))
    return [
        {
            "id": int(r.id),
            "at": iso(r.at),
            "actor": r.actor,
            "action": r.action,
            "target": r.target,
            "before": None if r.before is None else json.loads(r.before),
            "after": None if r.after is None else json.loads(r.after),
        }
        for r in rows
    ]


def audit(
    store: Store,
    actor: str,
    action: str,
    target: str,
    before: audit_log.Fields | None,
    after: audit_log.Fields | None,
    now: datetime,
) -> None:
    """Write one audit entry: who (`user:alice`, `api-token:ID`, `cli`), did what, to what,
    with the value before and after (JSON-able, None where there is none; never a secret)."""
    store.add_audit_entry(
        at=now, actor=actor, action=action, target=target, before=before, after=after
    )
