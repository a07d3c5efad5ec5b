"""Signing in to the dashboard in tests: a user in the store, a login through the real form.

`PASSWORDS` is real argon2id with small parameters, so that a login costs a millisecond;
apps under test get it through `create_app(..., passwords=PASSWORDS)`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TypeVar

import httpx
from argon2 import PasswordHasher
from playwright.sync_api import Page

from collector.store import Store
from collector.web.passwords import Passwords

PASSWORDS = Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
PASSWORD = "correct horse battery staple"
BASE_URL = "http://localhost"  # a Host the app answers to (TestClient's own is testserver)
Client = TypeVar("Client", bound=httpx.Client)
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


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
