"""The Store's part for dashboard people: users, sessions, failed logins."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from collector.store import people
from collector.store.audit import Fields
from collector.store.base import StoreBase


class PeopleStore(StoreBase):
    def add_user(self, *, username: str, role: str, password_hash: str, now: datetime) -> None:
        with self._unique(f"user {username!r} exists"), self._write() as conn:
            people.add_user(
                conn, username=username, role=role, password_hash=password_hash, now=now
            )

    def get_user(self, username: str) -> people.User | None:
        with self._read() as conn:
            return people.user(conn, username)

    def list_users(self) -> list[dict[str, object]]:
        """Every user without the password hash, by name."""
        with self._read() as conn:
            return people.list_users(conn)

    def set_user_disabled(self, username: str, disabled: bool) -> bool | None:
        """The previous value (None: no such user); disabling ends the user's sessions."""
        with self._write() as conn:
            return people.set_disabled(conn, username, disabled)

    def set_password_hash(self, username: str, password_hash: str) -> bool:
        """Replace the hash and end the user's sessions; False if there is no such user."""
        with self._write() as conn:
            return people.set_password_hash(conn, username, password_hash)

    def record_login(self, user_id: int, *, now: datetime, rehashed: str | None = None) -> None:
        with self._write() as conn:
            people.record_login(conn, user_id, now, rehashed)

    def add_session(
        self,
        *,
        token_sha256: bytes,
        user_id: int,
        csrf_token: str,
        now: datetime,
        expires_at: datetime,
    ) -> None:
        with self._write() as conn:
            people.add_session(
                conn,
                token_sha256=token_sha256,
                user_id=user_id,
                csrf_token=csrf_token,
                now=now,
                expires_at=expires_at,
            )

    def get_session(self, token_sha256: bytes) -> people.SessionRow | None:
        with self._read() as conn:
            return people.session(conn, token_sha256)

    def touch_session(self, token_sha256: bytes, *, now: datetime) -> None:
        with self._write() as conn:
            people.touch_session(conn, token_sha256, now)

    def end_session(self, token_sha256: bytes) -> bool:
        with self._write() as conn:
            return people.end_session(conn, token_sha256)

    def purge_sessions(self, *, now: datetime, idle: timedelta, forget: timedelta) -> None:
        """Drop sessions past their limits and failed-login counts older than `forget`."""
        with self._write() as conn:
            people.purge(conn, now, idle, forget)

    def login_failures(self, keys: Sequence[str]) -> dict[str, tuple[int, datetime]]:
        """key -> (failures, last failure) for the keys that have any."""
        with self._read() as conn:
            return people.failures(conn, keys)

    def add_login_failure(
        self, keys: Sequence[str], *, now: datetime, forget: timedelta
    ) -> dict[str, int]:
        """Count one failed login under each key; the new counts."""
        with self._write() as conn:
            return {key: people.add_failure(conn, key, now, forget) for key in keys}

    def clear_login_failures(self, key: str) -> None:
        with self._write() as conn:
            people.clear_failures(conn, key)

    def add_audit_entry(
        self,
        *,
        at: datetime,
        actor: str,
        action: str,
        target: str,
        before: Fields | None = None,
        after: Fields | None = None,
    ) -> None:
        """One audit log entry; use collector.store.people.audit."""
        with self._write() as conn:
            people.add_audit(
                conn, at=at, actor=actor, action=action, target=target, before=before, after=after
            )

    def list_audit_entries(self, *, limit: int = 100) -> list[dict[str, object]]:
        """Newest first."""
        with self._read() as conn:
            return people.list_audit(conn, limit)
