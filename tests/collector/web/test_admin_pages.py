"""Administration pages: agents (read by all, revoked by admins), enrollment and API tokens
(created by admins and shown once), and the audit log (admins only)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from collector.paging import Listing
from collector.store import AgentRecord, Store
from collector.store.audit import AuditFilter
from collector.web.app import create_app
from tests.collector.web.web_kit import NOW, PASSWORDS, dashboard
from wire import tokens

CA = "ab" * 32
FORM = re.compile(r"<form [^>]*method=\"post\"[^>]*>(.*?)</form>", re.S)


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    app = create_app(store, ca_fingerprint=CA, passwords=PASSWORDS)
    with dashboard(app, store, username="root", role="admin") as test_client:
        yield test_client


def audit(store: Store) -> list[dict[str, Any]]:
    """The audit log without the sign-in that opened the test's session."""
    rows = store.page_audit(AuditFilter(), Listing(limit=1000, sort="id")).items
    return [row for row in rows if not str(row["action"]).startswith("auth.")]


def add_agent(store: Store, agent_id: str, host: str = "lap") -> None:
    store.add_agent(AgentRecord(agent_id, b"\x01" * 32, host, "linux", "ml", "1.0", NOW))


def test_an_enrollment_token_is_shown_once(client: TestClient, store: Store) -> None:
    created = client.post("/tokens", data={"group": "lab", "uses": "3", "expires_in_hours": "2"})
    assert created.status_code == 200 and created.headers["cache-control"] == "no-store"
    found = re.search(r'<code id="new-token" class="secret">([^<]+)</code>', created.text)
    assert found is not None
    token = tokens.parse(found.group(1))
    assert token.ca_fingerprint == CA
    listing = client.get("/tokens").text
    assert f'data-token-id="{token.token_id}"' in listing
    assert token.secret not in listing and found.group(1) not in listing
    (row,) = store.list_enrollment_tokens()
    assert (row["group"], row["max_uses"], row["uses_left"]) == ("lab", 3, 3)
    assert store.enrollment_token_usable(
        token_id=token.token_id, secret_sha256=token.secret_sha256, now=NOW.replace(year=2000)
    )
    (entry,) = audit(store)
    assert (entry["actor"], entry["action"]) == ("user:root", "enrollment_token.create")
    assert token.secret not in str(entry)


def test_a_bad_token_request_is_shown_again_with_why(client: TestClient, store: Store) -> None:
    for data in [
        {"group": "   ", "uses": "1", "expires_in_hours": "1"},
        {"group": "g", "uses": "0", "expires_in_hours": "1"},
        {"group": "g", "uses": "1.5", "expires_in_hours": "1"},
        {"group": "g", "uses": "1", "expires_in_hours": "-1"},
        {"group": "g", "uses": "1", "expires_in_hours": "nan"},
        {"group": "g\x07", "uses": "1", "expires_in_hours": "1"},
    ]:
        response = client.post("/tokens", data=data)
        assert response.status_code == 422, data
        assert 'id="form-error"' in response.text, data
    assert store.list_enrollment_tokens() == [] and audit(store) == []
    client.post("/tokens", data={"group": "<script>alert(1)</script>", "uses": "1"})
    page = client.get("/tokens").text
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_tokens_are_revoked_from_the_list(client: TestClient, store: Store) -> None:
    client.post("/tokens", data={"group": "lab", "uses": "1", "expires_in_hours": "0"})
    (row,) = store.list_enrollment_tokens()
    assert row["expires_at"] is None
    response = client.post(f"/tokens/{row['token_id']}/revoke", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/tokens"
    assert store.list_enrollment_tokens()[0]["revoked"] is True
    assert client.post("/tokens/0000000000000000/revoke").status_code == 404
    assert client.post("/tokens/%00/revoke").status_code == 404
    assert [e["action"] for e in audit(store)] == [
        "enrollment_token.create",
        "enrollment_token.revoke",
    ]


def test_without_a_ca_the_page_says_to_use_the_cli(store: Store) -> None:
    app = create_app(store, passwords=PASSWORDS)
    with dashboard(app, store, username="root", role="admin") as client:
        assert "shadowai-collector tokens create" in client.get("/tokens").text
        assert client.post("/tokens", data={"group": "g"}).status_code == 409
    assert store.list_enrollment_tokens() == []


def test_an_api_token_is_shown_once_and_works(client: TestClient, store: Store) -> None:
    created = client.post("/api-tokens", data={"role": "viewer", "expires_in_hours": "1"})
    found = re.search(r'<code id="new-token" class="secret">(sat_[^<]+)</code>', created.text)
    assert found is not None and created.headers["cache-control"] == "no-store"
    assert found.group(1) not in client.get("/api-tokens").text
    headers = {"Authorization": f"Bearer {found.group(1)}"}
    assert client.get("/api/v1/alerts", headers=headers).status_code == 200
    (row,) = store.list_api_tokens()
    assert row["role"] == "viewer" and row["expires_at"] is not None
    client.post(f"/api-tokens/{row['token_id']}/revoke")
    assert client.get("/api/v1/alerts", headers=headers).status_code == 401
    assert client.post("/api-tokens", data={"role": "root"}).status_code == 422
    assert [e["action"] for e in audit(store)] == ["api_token.create", "api_token.revoke"]


def test_agents_list_and_revoke(client: TestClient, store: Store) -> None:
    add_agent(store, "ag-1", "<b>laptop</b>")
    add_agent(store, "ag-2", "desk")
    page = client.get("/agents").text
    assert '<tr data-agent-id="ag-1">' in page and "&lt;b&gt;laptop&lt;/b&gt;" in page
    assert "<b>laptop" not in page
    response = client.post("/agents/ag-1/revoke", follow_redirects=False)
    assert response.status_code == 303
    assert store.get_agent("ag-1").revoked  # type: ignore[union-attr]
    assert '<tr data-agent-id="ag-1" class="revoked">' in client.get("/agents").text
    assert client.post("/agents/nobody/revoke").status_code == 404
    (entry,) = audit(store)
    assert (entry["actor"], entry["target"]) == ("user:root", "agent:ag-1")


def test_the_audit_page_filters_and_links_alerts(client: TestClient, store: Store) -> None:
    add_agent(store, "ag-1")
    client.post("/agents/ag-1/revoke")
    client.post("/api-tokens", data={"role": "admin", "expires_in_hours": "0"})
    page = client.get("/audit").text
    assert page.count("data-audit-id=") == 3  # the two changes and the sign-in
    only = client.get("/audit?action=agent.revoke").text
    assert only.count("data-audit-id=") == 1 and "agent:ag-1" in only
    assert client.get("/audit?actor=user:nobody").text.count("data-audit-id=") == 0


@pytest.mark.parametrize("role", ["viewer", "analyst"])
def test_only_admins_administer(store: Store, role: str) -> None:
    add_agent(store, "ag-1")
    app = create_app(store, ca_fingerprint=CA, passwords=PASSWORDS)
    with dashboard(app, store, username=f"{role}", role=role) as client:
        assert client.get("/agents").status_code == 200
        assert "/revoke" not in client.get("/agents").text
        for path in ["/tokens", "/api-tokens", "/audit"]:
            assert client.get(path).status_code == 403, path
        for path, data in [
            ("/tokens", {"group": "g"}),
            ("/tokens/x/revoke", {}),
            ("/api-tokens", {"role": "admin"}),
            ("/api-tokens/x/revoke", {}),
            ("/agents/ag-1/revoke", {}),
        ]:
            assert client.post(path, data=data).status_code == 403, path
    assert store.list_enrollment_tokens() == [] and store.list_api_tokens() == []
    assert audit(store) == []


def test_every_admin_form_carries_the_csrf_field(client: TestClient, store: Store) -> None:
    add_agent(store, "ag-1")
    client.post("/tokens", data={"group": "g"})
    client.post("/api-tokens", data={"role": "viewer"})
    for path in ["/agents", "/tokens", "/api-tokens"]:
        forms = FORM.findall(client.get(path).text)
        assert forms, path
        assert all('name="csrf_token"' in form for form in forms), path
