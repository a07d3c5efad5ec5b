"""Enrollment tokens are single use and expire; API tokens map a secret to a role."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from collector.errors import CollectorError
from collector.store import Store

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SECRET = hashlib.sha256(b"secret").digest()
WRONG = hashlib.sha256(b"guess").digest()


def add_token(store: Store, token_id: str = "tok1", expires_at: datetime | None = None) -> None:
    store.add_enrollment_token(
        token_id=token_id,
        secret_sha256=SECRET,
        group="ml-team",
        created_at=NOW,
        expires_at=expires_at,
    )


def test_enrollment_token_redeems_once_and_returns_its_group(store: Store) -> None:
    add_token(store)
    assert store.redeem_enrollment_token(token_id="tok1", secret_sha256=SECRET, now=NOW) == (
        "ml-team"
    )
    assert store.redeem_enrollment_token(token_id="tok1", secret_sha256=SECRET, now=NOW) is None


def test_wrong_secret_is_refused_without_using_up_the_token(store: Store) -> None:
    add_token(store)
    assert store.redeem_enrollment_token(token_id="tok1", secret_sha256=WRONG, now=NOW) is None
    assert store.redeem_enrollment_token(token_id="tok1", secret_sha256=SECRET, now=NOW) == (
        "ml-team"
    )


def test_unknown_token_is_refused(store: Store) -> None:
    assert store.redeem_enrollment_token(token_id="nope", secret_sha256=SECRET, now=NOW) is None


def test_token_expires_at_its_expiry_time(store: Store) -> None:
    expiry = NOW + timedelta(hours=1)
    add_token(store, "late", expires_at=expiry)
    add_token(store, "early", expires_at=expiry)
    late = store.redeem_enrollment_token(token_id="late", secret_sha256=SECRET, now=expiry)
    early = store.redeem_enrollment_token(
        token_id="early", secret_sha256=SECRET, now=expiry - timedelta(seconds=1)
    )
    assert (late, early) == (None, "ml-team")


def test_token_without_expiry_never_expires(store: Store) -> None:
    add_token(store, expires_at=None)
    far = NOW + timedelta(days=3650)
    assert store.redeem_enrollment_token(token_id="tok1", secret_sha256=SECRET, now=far) == (
        "ml-team"
    )


def test_second_replica_cannot_redeem_a_token_the_first_used(
    store: Store, open_store: Callable[[], Store]
) -> None:
    add_token(store)
    other = open_store()
    try:
        first = store.redeem_enrollment_token(token_id="tok1", secret_sha256=SECRET, now=NOW)
        second = other.redeem_enrollment_token(token_id="tok1", secret_sha256=SECRET, now=NOW)
    finally:
        other.close()
    assert (first, second) == ("ml-team", None)


def test_duplicate_token_id_is_an_error(store: Store) -> None:
    add_token(store)
    with pytest.raises(CollectorError, match="enrollment token 'tok1' exists"):
        add_token(store)


def test_api_token_role_needs_the_right_secret(store: Store) -> None:
    store.add_api_token(
        token_id="0123456789abcdef", secret_sha256=SECRET, role="analyst", created_at=NOW
    )
    assert store.api_token_role(token_id="0123456789abcdef", secret_sha256=SECRET) == "analyst"
    assert store.api_token_role(token_id="0123456789abcdef", secret_sha256=WRONG) is None
    assert store.api_token_role(token_id="fedcba9876543210", secret_sha256=SECRET) is None


def test_duplicate_api_token_id_is_an_error(store: Store) -> None:
    store.add_api_token(token_id="t", secret_sha256=SECRET, role="viewer", created_at=NOW)
    with pytest.raises(CollectorError, match="API token 't' exists"):
        store.add_api_token(token_id="t", secret_sha256=WRONG, role="admin", created_at=NOW)
