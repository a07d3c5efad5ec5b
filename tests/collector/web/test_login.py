"""Logging in and out of the dashboard over the real app and store: cookies, the generic
failure, throttling, session expiry on an injected clock, and the audit entries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from collector.store import Store
from collector.web.app import create_app
from collector.web.passwords import Passwords
from collector.web.session import AccessSettings
from tests.collector.web.web_kit import BASE_URL, PASSWORD, PASSWORDS, add_user, csrf_of, log_in

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class Clock:
    """The time the app sees; tests move it instead of sleeping."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def client(store: Store, clock: Clock) -> Iterator[TestClient]:
    add_user(store, "alice", "analyst")
    app = create_app(store, now=clock, passwords=PASSWORDS)
    with TestClient(app, base_url=BASE_URL) as test_client:
        yield test_client


def _from(store: Store, clock: Clock, address: str) -> TestClient:
    """Another browser on the same app, from `address`."""
    app = create_app(store, now=clock, passwords=PASSWORDS)
    return TestClient(app, base_url=BASE_URL, client=(address, 50000))


def _signed_in(client: TestClient) -> bool:
    reply = client.get("/hosts", follow_redirects=False)
    return reply.status_code == 200 and 'id="signed-in"' in reply.text


def test_a_login_sets_a_strict_httponly_cookie_and_goes_to_next(client: TestClient) -> None:
    reply = log_in(client, next_="/alerts?status=open")
    assert reply.status_code == 303
    assert reply.headers["location"] == "/alerts?status=open"
    cookie = next(c for c in reply.headers.get_list("set-cookie") if "shadowai_session=" in c)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie and "Domain" not in cookie
    page = client.get("/alerts").text
    assert 'data-role="analyst">alice (analyst)</span>' in page


def test_wrong_password_unknown_user_and_disabled_user_read_the_same(
    client: TestClient, store: Store
) -> None:
    add_user(store, "dora", "viewer")
    store.set_user_disabled("dora", True)
    replies = [
        log_in(client, "alice", "not the password"),
        log_in(client, "nobody", PASSWORD),
        log_in(client, "dora", PASSWORD),
        log_in(client, "bad\x00name", PASSWORD),
    ]
    assert [r.status_code for r in replies] == [401] * 4
    for reply in replies:
        assert "Wrong username or password." in reply.text
        assert "shadowai_session=" not in reply.headers.get("set-cookie", "")
    assert not _signed_in(client)
    entries = store.list_audit_entries()  # newest first; the reason only admins see
    assert [(e["target"], e["after"]["reason"]) for e in entries] == [
        ("user:(not a username)", "no such user"),
        ("user:dora", "disabled"),
        ("user:nobody", "no such user"),
        ("user:alice", "password"),
    ]


def test_logins_logouts_and_failures_are_audited(client: TestClient, store: Store) -> None:
    log_in(client, "alice", "not the password")
    log_in(client)
    client.post("/logout", data={"csrf_token": csrf_of(client.get("/").text)})
    entries = store.list_audit_entries()
    assert [(e["action"], e["actor"], e["target"]) for e in entries] == [
        ("auth.logout", "user:alice", "user:alice"),
        ("auth.login", "user:alice", "user:alice"),
        ("auth.login_failed", "address:testclient", "user:alice"),
    ]
    assert all(e["at"] == T0.isoformat() for e in entries)


def test_logout_ends_the_session_even_for_a_kept_cookie(client: TestClient) -> None:
    log_in(client)
    kept = dict(client.cookies)
    reply = client.post("/logout", data={"csrf_token": csrf_of(client.get("/").text)})
    assert reply.url.path == "/login"
    client.cookies.clear()
    client.cookies.update(kept)  # a copy taken before logging out opens nothing
    assert not _signed_in(client)


def test_a_session_ends_after_idle_time_unless_used(client: TestClient, clock: Clock) -> None:
    log_in(client)
    for _ in range(4):  # used every 20 minutes: kept for 80 minutes
        clock.advance(minutes=20)
        assert _signed_in(client)
    clock.advance(minutes=30)
    assert not _signed_in(client)
    reply = client.get("/hosts", follow_redirects=False)
    assert reply.headers["location"] == "/login?next=%2Fhosts"


def test_a_session_ends_at_its_absolute_limit_however_busy(
    client: TestClient, clock: Clock
) -> None:
    log_in(client)
    for _ in range(11 * 4 + 3):
        clock.advance(minutes=15)
        assert _signed_in(client)
    clock.advance(minutes=15)  # 12 h after the login
    assert not _signed_in(client)


def test_session_limits_come_from_the_settings(store: Store, clock: Clock) -> None:
    add_user(store, "alice", "analyst")
    access = AccessSettings(idle=timedelta(minutes=5), absolute=timedelta(minutes=7))
    app = create_app(store, now=clock, passwords=PASSWORDS, access=access)
    with TestClient(app, base_url=BASE_URL) as client:
        log_in(client)
        clock.advance(minutes=4)
        assert _signed_in(client)
        clock.advance(minutes=4)
        assert not _signed_in(client)


def test_disabling_a_user_ends_its_sessions(client: TestClient, store: Store) -> None:
    log_in(client)
    assert _signed_in(client)
    store.set_user_disabled("alice", True)
    assert not _signed_in(client)
    store.set_user_disabled("alice", False)
    assert log_in(client).status_code == 303


def test_five_failures_for_a_user_make_it_wait_from_any_address(store: Store, clock: Clock) -> None:
    add_user(store, "alice", "analyst")
    for n in range(5):
        with _from(store, clock, f"192.0.2.{n}") as browser:
            assert log_in(browser, "alice", f"guess number {n}").status_code == 401
    with _from(store, clock, "198.51.100.7") as browser:
        refused = log_in(browser)  # the right password, not even checked
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) == 31
        assert "Too many failed logins" in refused.text
        clock.advance(seconds=31)
        assert log_in(browser).status_code == 303


def test_failures_from_one_address_throttle_every_username(store: Store, clock: Clock) -> None:
    add_user(store, "alice", "analyst")
    with _from(store, clock, "203.0.113.9") as browser:
        for n in range(5):
            assert log_in(browser, f"user{n}", PASSWORD).status_code == 401
        assert log_in(browser).status_code == 429
    with _from(store, clock, "203.0.113.10") as elsewhere:
        assert log_in(elsewhere).status_code == 303


def test_each_failure_past_the_free_ones_doubles_the_wait(store: Store, clock: Clock) -> None:
    add_user(store, "alice", "analyst")
    waits = []
    for n in range(3):
        with _from(store, clock, f"192.0.2.{n}") as browser:
            for m in range(5 if n == 0 else 1):
                log_in(browser, "alice", f"wrong {m}")
        with _from(store, clock, "198.51.100.1") as other:
            waits.append(int(log_in(other).headers["retry-after"]))
        clock.advance(seconds=waits[-1])
    assert waits == [31, 61, 121]


def test_a_success_clears_the_users_count(store: Store, clock: Clock) -> None:
    add_user(store, "alice", "analyst")
    for n in range(4):
        with _from(store, clock, f"192.0.2.{n}") as browser:
            log_in(browser, "alice", "wrong")
    with _from(store, clock, "192.0.2.200") as browser:
        assert log_in(browser).status_code == 303
    for n in range(4):
        with _from(store, clock, f"198.51.100.{n}") as browser:
            log_in(browser, "alice", "wrong")
    with _from(store, clock, "198.51.100.200") as browser:
        assert log_in(browser).status_code == 303  # 4 + 4 failures, but not in a row


def test_a_login_rehashes_a_password_hashed_with_old_parameters(store: Store, clock: Clock) -> None:
    old = Passwords(PasswordHasher(time_cost=1, memory_cost=512, parallelism=1))
    store.add_user(username="olga", role="viewer", password_hash=old.hash(PASSWORD), now=T0)
    before = store.get_user("olga")
    app = create_app(store, now=clock, passwords=PASSWORDS)
    with TestClient(app, base_url=BASE_URL) as client:
        assert log_in(client, "olga").status_code == 303
    after = store.get_user("olga")
    assert before is not None and after is not None
    assert before.password_hash.startswith("$argon2id$v=19$m=512,t=1,p=1$")
    assert after.password_hash.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert PASSWORDS.check(after.password_hash, PASSWORD).ok
    assert store.list_users()[0]["last_login"] == T0.isoformat()


def test_a_new_login_replaces_the_session_the_browser_had(client: TestClient) -> None:
    log_in(client)
    first = client.cookies["shadowai_session"]
    log_in(client)
    second = client.cookies["shadowai_session"]
    assert first != second
    client.cookies.clear()
    client.cookies.set("shadowai_session", first)
    assert not _signed_in(client)


def test_secure_cookies_get_the_host_prefix_and_hsts(store: Store, clock: Clock) -> None:
    add_user(store, "alice", "analyst")
    access = AccessSettings(cookie_secure=True)
    app = create_app(store, now=clock, passwords=PASSWORDS, access=access)
    with TestClient(app, base_url="https://localhost") as client:
        form = client.get("/login")
        assert "__Host-shadowai_login=" in form.headers["set-cookie"]
        reply = log_in(client)
        session = next(c for c in reply.headers.get_list("set-cookie") if "_session=" in c)
        assert session.startswith("__Host-shadowai_session=")
        assert "Secure" in session and "Path=/" in session and "Domain" not in session
        page = client.get("/hosts")
        assert page.status_code == 200
        assert page.headers["strict-transport-security"] == "max-age=31536000"


def test_a_request_over_https_gets_secure_cookies_and_hsts(client: TestClient) -> None:
    client.base_url = client.base_url.copy_with(scheme="https")
    form = client.get("/login")
    assert "Secure" in form.headers["set-cookie"]
    assert form.headers["strict-transport-security"] == "max-age=31536000"
    reply = log_in(client)
    session = next(c for c in reply.headers.get_list("set-cookie") if "_session=" in c)
    assert session.startswith("shadowai_session=") and "Secure" in session
