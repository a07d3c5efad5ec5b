"""What the web tests share: signing in through the real login form, API tokens for a role,
and a fleet of alerts to triage.

`PASSWORDS` is real argon2id with small parameters, so that a login costs a millisecond;
apps under test get it through `create_app(..., passwords=PASSWORDS)`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import httpx
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Page

from collector.store import NewAlert, Store
from collector.web.auth import mint_api_token
from collector.web.passwords import Passwords

PASSWORDS = Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
PASSWORD = "correct horse battery staple"
BASE_URL = "http://localhost"  # a Host the app answers to (TestClient's own is testserver)
Client = TypeVar("Client", bound=httpx.Client)
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LEVELS = ["low", "high", "critical", "medium"]


def add_user(
    store: Store, username: str = "alice", role: str = "admin", password: str = PASSWORD
) -> None:
    store.add_user(
        username=username, role=role, password_hash=PASSWORDS.hash(password), now=datetime.now(UTC)
    )


def csrf_of(html: str) -> str:
    """The CSRF token in a page's forms (the logout form on every page, the login form)."""
    match = _CSRF.search(html)
    assert match is not None, "no csrf_token field on the page"
    return match.group(1)


def log_in(
    client: httpx.Client, username: str = "alice", password: str = PASSWORD, next_: str = "/"
) -> httpx.Response:
    """Fetch the login form, then post it as a browser would; the reply, not followed."""
    token = csrf_of(client.get("/login").text)
    form = {"username": username, "password": password, "csrf_token": token, "next": next_}
    return client.post("/login", data=form, follow_redirects=False)


def sign_in(client: Client, store: Store, role: str = "admin") -> Client:
    """Add a user with `role` and log `client` in as it; the client, for chaining."""
    username = f"{role}-user"
    if store.get_user(username) is None:
        add_user(store, username, role)
    reply = log_in(client, username)
    assert reply.status_code == 303, reply.text
    return client


def browser_log_in(page: Page, url: str, username: str, password: str = PASSWORD) -> None:
    """Open `url` in a real browser, be sent to the login form, fill it in and submit it."""
    page.goto(url)
    assert "/login?next=" in page.url, page.url
    page.fill("#username", username)
    page.fill("#password", password)
    with page.expect_navigation():
        page.click("#login button[type=submit]")


@contextmanager
def dashboard(app: FastAPI, store: Store, *, username: str, role: str) -> Iterator[TestClient]:
    """A client of `app` signed in through the login form as `username` with `role` (the app
    must have been made with `passwords=PASSWORDS`)."""
    with TestClient(app, base_url=BASE_URL) as client:
        if store.get_user(username) is None:
            add_user(store, username, role)
        reply = log_in(client, username)
        assert reply.status_code == 303, reply.text
        # Posts as the page's forms make them: with the session's CSRF token.
        client.headers["X-CSRF-Token"] = csrf_of(client.get("/").text)
        yield client


def bearer(store: Store, role: str) -> dict[str, str]:
    token, token_id, digest = mint_api_token()
    store.add_api_token(token_id=token_id, secret_sha256=digest, role=role, created_at=NOW)
    return {"Authorization": f"Bearer {token}"}


def token_id_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].split("_")[1]


def seed_alerts(store: Store, count: int, *, title: str = "Rule") -> None:
    store.raise_alerts(
        [
            NewAlert(
                rule_id=f"rule-{i % 3}",
                rule_title=f"{title} {i % 3}",
                level=LEVELS[i % 4],
                agent_id=f"agent-{i % 5}",
                host_name=f"laptop-{i % 5}",
                dedup_key=f"k{i}",
                event_seq=i,
                summary=f"/models/{i}.gguf",
                at=NOW - timedelta(minutes=count - i),
            )
            for i in range(count)
        ]
    )
