"""Administration API: tokens created (shown once), listed a page at a time and revoked,
agents revoked, the audit log read; admins only, each change audited under its token."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from collector.store import AgentRecord, Store
from collector.web.app import create_app
from tests.collector.web.web_kit import NOW, bearer, token_id_of
from wire import tokens

CA = "cd" * 32


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(
        create_app(store, ca_fingerprint=CA), base_url="http://localhost"
    ) as test_client:
        yield test_client


def test_enrollment_tokens_are_created_listed_and_revoked(client: TestClient, store: Store) -> None:
    admin = bearer(store, "admin")
    created = client.post(
        "/api/v1/tokens", json={"group": "lab", "uses": 2, "expires_in_hours": 1}, headers=admin
    )
    assert created.status_code == 201 and created.headers["cache-control"] == "no-store"
    body = created.json()
    token = tokens.parse(body["token"])
    assert (token.token_id, token.ca_fingerprint) == (body["token_id"], CA)
    assert (body["group"], body["max_uses"]) == ("lab", 2) and body["expires_at"]
    listed = client.get("/api/v1/tokens", headers=admin).json()
    assert listed["next"] is None
    (item,) = listed["items"]
    assert item["token_id"] == token.token_id and token.secret not in str(listed)
    assert client.post(f"/api/v1/tokens/{token.token_id}/revoke", headers=admin).status_code == 200
    assert client.get("/api/v1/tokens", headers=admin).json()["items"][0]["revoked"] is True
    actor = f"api-token:{token_id_of(admin)}"
    audit = client.get("/api/v1/audit?sort=id", headers=admin).json()["items"]
    assert [(e["actor"], e["action"]) for e in audit] == [
        (actor, "enrollment_token.create"),
        (actor, "enrollment_token.revoke"),
    ]


def test_api_tokens_expire_and_revoke(client: TestClient, store: Store) -> None:
    admin = bearer(store, "admin")
    body = client.post(
        "/api/v1/api-tokens", json={"role": "analyst", "expires_in_hours": 2}, headers=admin
    ).json()
    assert body["role"] == "analyst" and body["expires_at"]
    made = {"Authorization": f"Bearer {body['token']}"}
    assert client.get("/api/v1/alerts", headers=made).status_code == 200
    listed = client.get("/api/v1/api-tokens?limit=1", headers=admin).json()
    assert len(listed["items"]) == 1 and listed["next"] is not None
    assert body["token"] not in str(listed)
    revoked = client.post(f"/api/v1/api-tokens/{body['token_id']}/revoke", headers=admin)
    assert revoked.json() == {"token_id": body["token_id"], "revoked": True}
    assert client.get("/api/v1/alerts", headers=made).status_code == 401


def test_an_expired_api_token_is_refused(client: TestClient, store: Store) -> None:
    from collector.web.auth import mint_api_token

    text, token_id, digest = mint_api_token()
    store.add_api_token(
        token_id=token_id, secret_sha256=digest, role="admin", created_at=NOW, expires_at=NOW
    )
    response = client.get("/api/v1/alerts", headers={"Authorization": f"Bearer {text}"})
    assert response.status_code == 401


def test_agents_are_revoked_by_admins_only(client: TestClient, store: Store) -> None:
    store.add_agent(AgentRecord("a1", b"\x01" * 32, "lap", "linux", "g", "t", NOW))
    analyst, admin = bearer(store, "analyst"), bearer(store, "admin")
    assert client.post("/api/v1/agents/a1/revoke", headers=analyst).status_code == 403
    assert client.post("/api/v1/agents/a1/revoke", headers=admin).json() == {
        "agent_id": "a1",
        "revoked": True,
    }
    assert client.post("/api/v1/agents/zz/revoke", headers=admin).status_code == 404
    (entry,) = client.get("/api/v1/audit", headers=admin).json()["items"]
    assert (entry["target"], entry["before"], entry["after"]) == (
        "agent:a1",
        {"revoked": False},
        {"revoked": True},
    )


@pytest.mark.parametrize("role", ["viewer", "analyst"])
def test_analysts_may_not_create_tokens_or_read_the_audit(
    client: TestClient, store: Store, role: str
) -> None:
    headers = bearer(store, role)
    for path, body in [
        ("/api/v1/tokens", {"group": "g"}),
        ("/api/v1/api-tokens", {"role": "admin"}),
    ]:
        response = client.post(path, json=body, headers=headers)
        assert response.status_code == 403
        assert response.json() == {"detail": f"needs role admin, token has {role}"}
    for path in ["/api/v1/tokens", "/api/v1/api-tokens", "/api/v1/audit"]:
        assert client.get(path, headers=headers).status_code == 403, path
    assert store.list_enrollment_tokens() == []


def test_bad_token_requests_are_422_with_the_field(client: TestClient, store: Store) -> None:
    admin = bearer(store, "admin")
    for path, body, field in [
        ("/api/v1/tokens", {"uses": 0}, "uses"),
        ("/api/v1/tokens", {"uses": 10**7}, "uses"),
        ("/api/v1/tokens", {"group": " "}, "group"),
        ("/api/v1/tokens", {"expires_in_hours": -1}, "expires_in_hours"),
        ("/api/v1/tokens", {"expires_in_hours": 10**9}, "expires_in_hours"),
        ("/api/v1/api-tokens", {"role": "root"}, "role"),
    ]:
        response = client.post(path, json=body, headers=admin)
        assert response.status_code == 422, body
        assert response.json()["field"] == field, body
    nan = client.post(
        "/api/v1/api-tokens",
        content=b'{"role": "viewer", "expires_in_hours": NaN}',
        headers={**admin, "Content-Type": "application/json"},
    )
    assert nan.status_code == 422
    assert store.list_enrollment_tokens() == []


def test_without_a_ca_enrollment_tokens_are_409(store: Store) -> None:
    with TestClient(create_app(store), base_url="http://localhost") as client:
        response = client.post("/api/v1/tokens", json={}, headers=bearer(store, "admin"))
    assert response.status_code == 409


def test_audit_filters_and_pages(client: TestClient, store: Store) -> None:
    admin = bearer(store, "admin")
    for role in ["viewer", "analyst", "viewer"]:
        client.post("/api/v1/api-tokens", json={"role": role}, headers=admin)
    first = client.get("/api/v1/audit?limit=2", headers=admin).json()
    assert len(first["items"]) == 2 and first["next"] is not None
    rest = client.get(f"/api/v1/audit?limit=2&cursor={first['next']}", headers=admin).json()
    ids = [e["id"] for e in first["items"] + rest["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 3
    only = client.get("/api/v1/audit?action=api_token.create&target=nothing", headers=admin)
    assert only.json()["items"] == []
    csv = client.get("/api/v1/audit?format=csv", headers=admin)
    assert csv.text.startswith("id,at,actor,action,target,before,after")
