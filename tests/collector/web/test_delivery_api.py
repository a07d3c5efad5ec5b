"""REST API for delivery: refusals, collector events, per-agent counters, tokens, revocation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from collector.store import AgentRecord, Store
from collector.store.delivery import CollectorEvent, Refusal
from collector.web.app import create_app
from collector.web.auth import mint_api_token

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store), base_url="http://localhost") as test_client:
        yield test_client


def bearer(store: Store, role: str) -> dict[str, str]:
    token, token_id, digest = mint_api_token()
    store.add_api_token(token_id=token_id, secret_sha256=digest, role=role, created_at=NOW)
    return {"Authorization": f"Bearer {token}"}


def seed(store: Store) -> None:
    store.add_agent(AgentRecord("a1", b"\x01" * 32, "lap", "linux", "g", "t", NOW))
    refusals = [Refusal("a1", s, "fork", "no chain", b"d", b"env", NOW) for s in (4, 5, 6)]
    note = CollectorEvent("a1", "cloned_identity", NOW, {"event.reason": "cloned_identity"})
    store.ingest(
        agent_id="a1",
        expected_last_seq=0,
        last_seq=0,
        last_digest=b"",
        events=[],
        gaps=[],
        alerts=[],
        now=NOW,
        refusals=refusals,
        notes=[note],
        counts={"refused.fork": 3},
    )


def test_refusals_page_newest_first_with_a_cursor(client: TestClient, store: Store) -> None:
    seed(store)
    headers = bearer(store, "viewer")
    first = client.get("/api/v1/refusals?limit=2", headers=headers).json()
    assert [r["seq"] for r in first["items"]] == [6, 5]
    rest = client.get(f"/api/v1/refusals?limit=2&cursor={first['next']}", headers=headers).json()
    assert [r["seq"] for r in rest["items"]] == [4] and rest["next"] is None
    assert client.get("/api/v1/refusals?cursor=x", headers=headers).status_code == 400


def test_agents_carry_their_delivery_counters(client: TestClient, store: Store) -> None:
    seed(store)
    (agent,) = client.get("/api/v1/agents", headers=bearer(store, "viewer")).json()["items"]
    assert agent["delivery"] == {"refused.fork": 3}


def test_collector_events_are_listed(client: TestClient, store: Store) -> None:
    seed(store)
    items = client.get("/api/v1/collector-events", headers=bearer(store, "viewer")).json()["items"]
    assert [e["event.reason"] for e in items] == ["cloned_identity"]


def test_revoking_needs_an_admin(client: TestClient, store: Store) -> None:
    seed(store)
    store.add_enrollment_token(
        token_id="t1", secret_sha256=b"s", group="g", created_at=NOW, expires_at=None
    )
    viewer, admin = bearer(store, "viewer"), bearer(store, "admin")
    assert client.post("/api/v1/agents/a1/revoke", headers=viewer).status_code == 403
    assert client.post("/api/v1/agents/a1/revoke", headers=admin).json()["revoked"] is True
    assert client.post("/api/v1/agents/zz/revoke", headers=admin).status_code == 404
    assert client.post("/api/v1/tokens/t1/revoke", headers=admin).status_code == 200
    assert client.get("/api/v1/tokens", headers=admin).json()["items"][0]["revoked"] is True
    (api_token,) = [t for t in store.list_api_tokens() if t["role"] == "viewer"]
    revoke = client.post(f"/api/v1/api-tokens/{api_token['token_id']}/revoke", headers=admin)
    assert revoke.status_code == 200
    assert client.get("/api/v1/refusals", headers=viewer).status_code == 401
