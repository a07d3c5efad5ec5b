"""Users, sessions, failed-login counts, API token expiry and the audit log in the store,
on SQLite and PostgreSQL; counts shared by two replicas of the collector."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from collector.errors import CollectorError
from collector.store import Store
from collector.store.people import audit

NOW = datetime(2026, 2, 1, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
HASH = "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


def _session(store: Store, digest: bytes, username: str = "alice", at: datetime = NOW) -> None:
    user = store.get_user(username)
    assert user is not None
    store.add_session(
        token_sha256=digest, user_id=user.id, csrf_token="c" * 43, now=at, expires_at=at + HOUR
    )


def test_users_are_listed_without_their_hashes(store: Store) -> None:
    store.add_user(username="bob", role="viewer", password_hash=HASH, now=NOW)
    store.add_user(username="alice", role="admin", password_hash=HASH, now=NOW)
    assert store.list_users() == [
        {
            "username": name,
            "role": role,
            "created_at": NOW.isoformat(),
            "disabled": False,
            "last_login": None,
        }
        for name, role in [("alice", "admin"), ("bob", "viewer")]
    ]
    with pytest.raises(CollectorError, match="user 'alice' exists"):
        store.add_user(username="alice", role="viewer", password_hash=HASH, now=NOW)


def test_a_session_is_found_by_its_digest_with_its_user(store: Store) -> None:
    store.add_user(username="alice", role="analyst", password_hash=HASH, now=NOW)
    _session(store, b"\x01" * 32)
    found = store.get_session(b"\x01" * 32)
    assert found is not None
    assert (found.username, found.role, found.disabled) == ("alice", "analyst", False)
    assert (found.created_at, found.last_seen, found.expires_at) == (NOW, NOW, NOW + HOUR)
    store.touch_session(b"\x01" * 32, now=NOW + timedelta(minutes=5))
    touched = store.get_session(b"\x01" * 32)
    assert touched is not None and touched.last_seen == NOW + timedelta(minutes=5)
    assert store.get_session(b"\x02" * 32) is None
    assert store.end_session(b"\x01" * 32) and not store.end_session(b"\x01" * 32)


def test_disabling_or_a_new_password_ends_the_users_sessions(store: Store) -> None:
    for name in ("alice", "bob"):
        store.add_user(username=name, role="viewer", password_hash=HASH, now=NOW)
    _session(store, b"\x01" * 32, "alice")
    _session(store, b"\x02" * 32, "bob")
    assert store.set_user_disabled("alice", True) is False
    assert store.get_session(b"\x01" * 32) is None
    assert store.get_session(b"\x02" * 32) is not None
    assert store.set_user_disabled("alice", False) is True
    assert store.set_user_disabled("nobody", True) is None
    assert store.set_password_hash("bob", HASH + "x")
    assert store.get_session(b"\x02" * 32) is None
    bob = store.get_user("bob")
    assert bob is not None and bob.password_hash == HASH + "x"
    assert not store.set_password_hash("nobody", HASH)


def test_purge_drops_sessions_past_either_limit_and_old_failures(store: Store) -> None:
    store.add_user(username="alice", role="viewer", password_hash=HASH, now=NOW)
    _session(store, b"\x01" * 32, at=NOW - 2 * HOUR)  # past its absolute limit
    _session(store, b"\x02" * 32, at=NOW - timedelta(minutes=40))  # idle too long
    _session(store, b"\x03" * 32, at=NOW - timedelta(minutes=10))
    store.add_login_failure(["user:old"], now=NOW - 2 * HOUR, forget=HOUR)
    store.add_login_failure(["user:new"], now=NOW, forget=HOUR)
    store.purge_sessions(now=NOW, idle=timedelta(minutes=30), forget=HOUR)
    kept = [store.get_session(bytes([n]) * 32) is not None for n in (1, 2, 3)]
    assert kept == [False, False, True]
    assert set(store.login_failures(["user:old", "user:new"])) == {"user:new"}


def test_replicas_add_up_failed_logins(open_store: Callable[[], Store]) -> None:
    one, two = open_store(), open_store()
    try:
        counts = [
            (one if n % 2 else two).add_login_failure(
                ["user:alice", "addr:192.0.2.1"], now=NOW + timedelta(seconds=n), forget=HOUR
            )
            for n in range(5)
        ]
        assert [c["user:alice"] for c in counts] == [1, 2, 3, 4, 5]
        assert one.login_failures(["user:alice"]) == {"user:alice": (5, NOW + timedelta(seconds=4))}
        later = NOW + 2 * HOUR  # an hour without a failure forgets them
        assert two.add_login_failure(["user:alice"], now=later, forget=HOUR) == {"user:alice": 1}
        one.clear_login_failures("user:alice")
        assert set(two.login_failures(["user:alice", "addr:192.0.2.1"])) == {"addr:192.0.2.1"}
    finally:
        one.close()
        two.close()


def test_an_api_token_stops_working_when_it_expires(store: Store) -> None:
    secret = b"\x07" * 32
    store.add_api_token(
        token_id="a" * 16,
        secret_sha256=secret,
        role="viewer",
        created_at=NOW,
        expires_at=NOW + HOUR,
    )
    store.add_api_token(token_id="b" * 16, secret_sha256=secret, role="admin", created_at=NOW)
    assert store.api_token_role(token_id="a" * 16, secret_sha256=secret, now=NOW) == "viewer"
    assert store.api_token_role(token_id="a" * 16, secret_sha256=secret, now=NOW + HOUR) is None
    assert store.api_token_role(token_id="b" * 16, secret_sha256=secret, now=NOW + 99 * HOUR)
    listed = {t["token_id"]: t["expires_at"] for t in store.list_api_tokens()}
    assert listed == {"a" * 16: (NOW + HOUR).isoformat(), "b" * 16: None}


def test_audit_entries_keep_who_what_and_the_values(store: Store) -> None:
    audit(store, "cli", "user.create", "user:alice", None, {"role": "admin"}, NOW)
    audit(
        store,
        "user:alice",
        "user.disable",
        "user:bob",
        {"disabled": False},
        {"disabled": True},
        NOW + HOUR,
    )
    assert store.list_audit_entries() == [
        {
            "id": 2,
            "at": (NOW + HOUR).isoformat(),
            "actor": "user:alice",
            "action": "user.disable",
            "target": "user:bob",
            "before": {"disabled": False},
            "after": {"disabled": True},
        },
        {
            "id": 1,
            "at": NOW.isoformat(),
            "actor": "cli",
            "action": "user.create",
            "target": "user:alice",
            "before": None,
            "after": {"role": "admin"},
        },
    ]
    assert len(store.list_audit_entries(limit=1)) == 1
