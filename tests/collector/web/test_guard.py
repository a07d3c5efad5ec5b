"""The guard over the whole app: no page without a session (every route, found by walking
app.routes), CSRF on every post, the Host allow-list, headers, bearer-only API, roles."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from starlette.routing import Mount
from starlette.websockets import WebSocketDisconnect

from collector.store import Store
from collector.web.app import create_app
from collector.web.auth import mint_api_token
from collector.web.guard import path_kind
from collector.web.hosts import HostAllowList
from collector.web.session import require_role
from tests.collector.web.web_kit import BASE_URL, PASSWORDS, csrf_of, log_in, sign_in

try:
    from fastapi.routing import iter_route_contexts
except ImportError:  # older FastAPI flattens included routers into app.routes itself

    def iter_route_contexts(routes: Any) -> Any:  # type: ignore[misc]
        return iter(routes)


RULES: list[dict[str, object]] = [{"id": "r-1", "title": "a rule", "level": "high"}]


def _app(store: Store) -> FastAPI:
    app = create_app(
        store, rules_summary=lambda: RULES, rules_status=lambda: {}, passwords=PASSWORDS
    )

    @app.get("/whoami")
    def whoami(request: Request) -> dict[str, str]:
        """A page as another module would write one, to check the request.state contract."""
        state = request.state
        return {k: getattr(state, k) for k in ("actor", "username", "role", "csrf_token")}

    @app.post("/analysts-only")
    def analysts_only(request: Request) -> dict[str, str]:
        require_role(request, "analyst")
        return {"done": "yes"}

    return app


@pytest.fixture
def app(store: Store) -> FastAPI:
    return _app(store)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url=BASE_URL) as test_client:
        yield test_client


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def _routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route, with included routers' prefixes; a mount as PATH/."""
    found = []
    for route in iter_route_contexts(app.routes):
        if isinstance(getattr(route, "original_route", route), Mount):
            found.append(("GET", f"{route.path}/"))
        found += [(method, str(route.path)) for method in route.methods or ()]
    return found


def test_no_page_of_any_route_is_served_without_a_session(client: TestClient, app: FastAPI) -> None:
    pages = [(m, p) for m, p in _routes(app) if path_kind(p) == "page"]
    assert len(pages) >= 9  # the dashboard's pages, /logout and the two above
    for method, path in pages:
        reply = client.request(method, _concrete(path), follow_redirects=False)
        assert reply.status_code == 303, (method, path)
        assert reply.headers["location"].startswith("/login"), (method, path)
    assert client.get("/no/such/page", follow_redirects=False).status_code == 303


def test_only_login_static_and_health_are_open(app: FastAPI) -> None:
    public = {path for _, path in _routes(app) if path_kind(path) == "public"}
    assert public == {"/login", "/static/", "/healthz"}
    assert path_kind("/healthz") == "public"
    assert path_kind("/metrics") == "own-auth" and path_kind("/api/v1/hosts") == "own-auth"
    assert path_kind("/loginx") == "page" and path_kind("/static") == "page"


def test_the_next_page_is_where_the_redirect_came_from(client: TestClient, store: Store) -> None:
    reply = client.get("/alerts?status=open", follow_redirects=False)
    assert reply.headers["location"] == "/login?next=%2Falerts%3Fstatus%3Dopen"
    form = client.get(reply.headers["location"]).text
    assert '<input type="hidden" name="next" value="/alerts?status=open">' in form
    sign_in(client, store)
    client.cookies.pop("shadowai_session")
    assert log_in(client, "admin-user", next_="/alerts?status=open").headers["location"] == (
        "/alerts?status=open"
    )


def test_a_post_without_a_session_does_nothing(client: TestClient, store: Store) -> None:
    reply = client.post("/analysts-only", data={"csrf_token": "x"}, follow_redirects=False)
    assert reply.status_code == 303 and reply.headers["location"] == "/login"


@pytest.mark.parametrize(
    ("next_", "location"),
    [
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("\\\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/ok\r\nX: y", "/"),
        (" //evil.example", "/"),
        ("/%0d%0aSet-Cookie:x=1", "/%0d%0aSet-Cookie:x=1"),  # stays on this site, encoded
        ("/models?include_removed=true", "/models?include_removed=true"),
    ],
)
def test_next_never_leaves_the_site(
    client: TestClient, store: Store, next_: str, location: str
) -> None:
    sign_in(client, store)
    client.cookies.clear()
    reply = log_in(client, "admin-user", next_=next_)
    assert reply.status_code == 303
    assert reply.headers["location"] == location


def test_request_state_carries_the_contract(client: TestClient, store: Store) -> None:
    sign_in(client, store, "analyst")
    state = client.get("/whoami").json()
    assert state["actor"] == "user:analyst-user" and state["username"] == "analyst-user"
    assert state["role"] == "analyst"
    assert state["csrf_token"] == csrf_of(client.get("/").text)


def test_require_role_refuses_a_lower_role(app: FastAPI, store: Store) -> None:
    with TestClient(app, base_url=BASE_URL) as viewer:
        sign_in(viewer, store, "viewer")
        token = csrf_of(viewer.get("/").text)
        assert viewer.post("/analysts-only", data={"csrf_token": token}).status_code == 403
    with TestClient(app, base_url=BASE_URL) as admin:
        sign_in(admin, store, "admin")
        token = csrf_of(admin.get("/").text)
        assert admin.post("/analysts-only", data={"csrf_token": token}).json() == {"done": "yes"}


@pytest.mark.parametrize(
    "send",
    [
        {},
        {"data": {"csrf_token": ""}},
        {"data": {"csrf_token": "a" * 43}},
        {"data": {"other": "x"}},
        {"content": b"csrf_token=%ff%fe", "headers": {"content-type": "text/plain"}},
        {"files": {"csrf_token": ("t", b"x")}},
        {"headers": {"x-csrf-token": "wrong"}},
    ],
)
def test_a_post_without_the_sessions_csrf_token_is_refused(
    client: TestClient, store: Store, send: dict[str, object]
) -> None:
    sign_in(client, store, "admin")
    reply = client.post("/analysts-only", **send)  # type: ignore[arg-type]
    assert reply.status_code == 403
    assert "did not come from this dashboard" in reply.text
    assert client.get("/whoami").status_code == 200  # still signed in


def test_the_csrf_token_may_come_as_a_header(client: TestClient, store: Store) -> None:
    sign_in(client, store, "admin")
    token = csrf_of(client.get("/").text)
    assert client.post("/analysts-only", headers={"x-csrf-token": token}).status_code == 200


def test_another_sessions_csrf_token_is_refused(app: FastAPI, store: Store) -> None:
    with TestClient(app, base_url=BASE_URL) as one, TestClient(app, base_url=BASE_URL) as two:
        sign_in(one, store, "admin")
        sign_in(two, store, "admin")
        theirs = csrf_of(two.get("/").text)
        assert one.post("/analysts-only", data={"csrf_token": theirs}).status_code == 403


def test_logout_needs_the_csrf_token(client: TestClient, store: Store) -> None:
    sign_in(client, store)
    assert client.post("/logout", data={}).status_code == 403
    assert client.get("/whoami").status_code == 200


def test_the_login_form_needs_its_cookie(client: TestClient, store: Store) -> None:
    sign_in(client, store)
    client.cookies.clear()
    token = csrf_of(client.get("/login").text)
    client.cookies.clear()  # a cross-site form has the field but never our cookie
    form = {"username": "admin-user", "password": "x" * 20, "csrf_token": token}
    assert client.post("/login", data=form).status_code == 403


def test_the_session_cookie_does_not_open_the_api(client: TestClient, store: Store) -> None:
    sign_in(client, store, "admin")
    assert client.get("/api/v1/hosts").status_code == 401
    token = csrf_of(client.get("/").text)
    change = client.post(
        "/api/v1/alerts/1/status",
        json={"status": "acknowledged"},
        headers={"x-csrf-token": token},
    )
    assert change.status_code == 401


def test_an_expired_api_token_is_refused(client: TestClient, store: Store) -> None:
    now = datetime.now(UTC)
    tokens = {}
    for name, expires in [("live", now + timedelta(days=1)), ("dead", now - timedelta(seconds=1))]:
        text, token_id, digest = mint_api_token()
        store.add_api_token(
            token_id=token_id,
            secret_sha256=digest,
            role="viewer",
            created_at=now,
            expires_at=expires,
        )
        tokens[name] = text
    live = client.get("/api/v1/hosts", headers={"Authorization": f"Bearer {tokens['live']}"})
    dead = client.get("/api/v1/hosts", headers={"Authorization": f"Bearer {tokens['dead']}"})
    assert (live.status_code, dead.status_code) == (200, 401)


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("evil.example", 421),
        ("evil.example:8080", 421),
        ("localhost.evil.example", 421),
        ("127.0.0.2", 421),
        ("", 400),
        ("local host", 400),
        ("localhost:99999", 400),
        ("[::1", 400),
    ],
)
def test_a_host_we_do_not_serve_is_refused_on_every_path(
    client: TestClient, host: str, status: int
) -> None:
    for path in ["/login", "/static/style.css", "/api/v1/hosts", "/healthz", "/"]:
        reply = client.get(path, headers={"host": host}, follow_redirects=False)
        assert reply.status_code == status, (path, host)
        assert reply.headers["x-frame-options"] == "DENY"


def test_loopback_names_are_served(client: TestClient) -> None:
    for host in ["localhost", "localhost:8080", "127.0.0.1:1", "[::1]:8080", "LOCALHOST."]:
        assert client.get("/login", headers={"host": host}).status_code == 200, host


def test_a_given_allow_list_replaces_the_default(store: Store) -> None:
    hosts = HostAllowList(frozenset({"collector.example"}), 8443)
    app = create_app(store, hosts=hosts, passwords=PASSWORDS)
    with TestClient(app, base_url="http://collector.example:8443") as client:
        assert client.get("/login").status_code == 200
        assert client.get("/login", headers={"host": "collector.example:80"}).status_code == 421
        assert client.get("/login", headers={"host": "localhost:8443"}).status_code == 421


def test_headers_forbid_framing_and_caching_pages(client: TestClient, store: Store) -> None:
    sign_in(client, store)
    for path in ["/", "/login"]:
        reply = client.get(path)
        assert reply.headers["x-frame-options"] == "DENY"
        assert reply.headers["cache-control"] == "no-store"
        assert reply.headers["content-security-policy"].startswith("default-src 'none'; ")
        assert "strict-transport-security" not in reply.headers
    css = client.get("/static/style.css")
    assert "cache-control" not in css.headers and css.headers["x-frame-options"] == "DENY"


def test_pages_show_the_user_and_a_logout_form(client: TestClient, store: Store) -> None:
    sign_in(client, store, "viewer")
    page = client.get("/hosts").text
    assert '<span id="signed-in" data-role="viewer">viewer-user (viewer)</span>' in page
    assert '<form id="logout" class="session" method="post" action="/logout">' in page
    login = client.get("/login").text
    assert 'id="logout"' not in login and 'href="/hosts"' not in login


def test_websockets_are_refused(client: TestClient) -> None:
    with pytest.raises(WebSocketDisconnect), client.websocket_connect("/"):
        pass
