"""REST API: bearer tokens, roles, and the {"items": [...], "next": ...} answers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from collector.store import Store
from collector.web.app import create_app
from collector.web.auth import mint_api_token

Seeder = Callable[[Store], Any]
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ENDPOINTS = ["hosts", "models", "processes", "alerts", "events", "agents", "rules"]
RULES: list[dict[str, object]] = [{"id": "r-1", "title": "No pickle", "level": "high"}]


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    app = create_app(store, rules_summary=lambda: RULES)
    with TestClient(app, base_url="http://localhost") as test_client:
        yield test_client


def bearer(store: Store, role: str) -> dict[str, str]:
    token, token_id, digest = mint_api_token()
    store.add_api_token(token_id=token_id, secret_sha256=digest, role=role, created_at=NOW)
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_endpoint_needs_a_token(client: TestClient, endpoint: str) -> None:
    response = client.get(f"/api/v1/{endpoint}")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"detail": "missing or invalid API token"}


def test_unknown_or_malformed_tokens_are_refused(client: TestClient, store: Store) -> None:
    unknown, _, _ = mint_api_token()
    good = bearer(store, "admin")["Authorization"]
    for header in [f"Bearer {unknown}", "Bearer sat_nonsense", good.replace("Bearer", "Basic")]:
        response = client.get("/api/v1/hosts", headers={"Authorization": header})
        assert response.status_code == 401, header


def test_viewer_reads_every_endpoint(client: TestClient, store: Store, seed_fleet: Seeder) -> None:
    seed_fleet(store)
    headers = bearer(store, "viewer")
    for endpoint in ENDPOINTS:
        response = client.get(f"/api/v1/{endpoint}", headers=headers)
        assert response.status_code == 200, endpoint
        assert isinstance(response.json()["items"], list), endpoint


def test_answers_carry_the_seeded_fleet(
    client: TestClient, store: Store, seed_fleet: Seeder
) -> None:
    fleet = seed_fleet(store)
    headers = bearer(store, "viewer")

    def items(path: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = client.get(path, headers=headers).json()["items"]
        return result

    assert {m["file.path"] for m in items("/api/v1/models")} == {
        fleet.model_path,
        fleet.hostile_path,
    }
    assert [h["host.name"] for h in items("/api/v1/hosts")] == [fleet.host_name]
    assert [a["rule_id"] for a in items("/api/v1/alerts?status=open")] == [fleet.rule_id]
    assert items("/api/v1/alerts?status=resolved") == []
    assert [e["seq"] for e in items("/api/v1/events?limit=1")] == [2]
    no_matches = {"alerts_total": 0, "alerts_open": 0, "last_match": None}
    assert items("/api/v1/rules") == [{**rule, **no_matches} for rule in RULES]
    (agent,) = items("/api/v1/agents")
    assert agent["agent_id"] == fleet.agent_id
    assert agent["public_key"] == "01" * 32
    assert (agent["last_seq"], agent["revoked"], agent["host.group"]) == (2, False, "ml-team")


def test_bad_query_parameters_are_4xx(client: TestClient, store: Store) -> None:
    headers = bearer(store, "viewer")
    assert client.get("/api/v1/alerts?status=bogus", headers=headers).status_code == 422
    # a limit out of range is the listing contract's 400, naming the parameter
    for limit in (0, 5000):
        response = client.get(f"/api/v1/events?limit={limit}", headers=headers)
        assert response.status_code == 400
        assert response.json()["field"] == "limit"


def test_viewer_may_not_change_alert_status(
    client: TestClient, store: Store, seed_fleet: Seeder
) -> None:
    seed_fleet(store)
    alert_id = store.list_alerts()[0]["id"]
    response = client.post(
        f"/api/v1/alerts/{alert_id}/status",
        json={"status": "resolved"},
        headers=bearer(store, "viewer"),
    )
    assert response.status_code == 403
    assert response.json() == {"detail": "needs role analyst, token has viewer"}
    assert store.list_alerts()[0]["status"] == "open"


@pytest.mark.parametrize("role", ["analyst", "admin"])
def test_analyst_changes_alert_status(
    client: TestClient, store: Store, seed_fleet: Seeder, role: str
) -> None:
    seed_fleet(store)
    alert_id = store.list_alerts()[0]["id"]
    response = client.post(
        f"/api/v1/alerts/{alert_id}/status",
        json={"status": "acknowledged"},
        headers=bearer(store, role),
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["status"], body["until"]) == (alert_id, "acknowledged", None)
    assert body["by"].startswith("api-token:")
    (alert,) = store.list_alerts()
    assert (alert["status"], alert["status_by"]) == ("acknowledged", body["by"])
    changes = store.alert_history(int(str(alert_id)))
    assert [(c["status"], c["by"]) for c in changes] == [
        ("open", "system"),
        ("acknowledged", body["by"]),
    ]


def test_suppressing_needs_a_future_until_and_records_it(
    client: TestClient, store: Store, seed_fleet: Seeder
) -> None:
    seed_fleet(store)
    alert_id = store.list_alerts()[0]["id"]
    url, headers = f"/api/v1/alerts/{alert_id}/status", bearer(store, "analyst")
    without = client.post(url, json={"status": "suppressed"}, headers=headers)
    assert without.status_code == 422
    past = client.post(
        url, json={"status": "suppressed", "until": "2000-01-01T00:00:00Z"}, headers=headers
    )
    assert past.status_code == 422
    until = "2999-01-01T00:00:00+00:00"
    ok = client.post(
        url,
        json={"status": "suppressed", "until": until, "reason": "vendor fix due"},
        headers=headers,
    )
    assert ok.status_code == 200
    (alert,) = store.list_alerts()
    assert (alert["status"], alert["suppressed_until"]) == ("suppressed", until)
    history = client.get(f"/api/v1/alerts/{alert_id}/history", headers=headers).json()["items"]
    assert [(c["status"], c["until"], c["reason"]) for c in history][1:] == [
        ("suppressed", until, "vendor fix due")
    ]


def test_status_change_checks_the_alert_and_the_status(client: TestClient, store: Store) -> None:
    headers = bearer(store, "analyst")
    missing = client.post("/api/v1/alerts/999/status", json={"status": "open"}, headers=headers)
    assert missing.status_code == 404
    bogus = client.post("/api/v1/alerts/1/status", json={"status": "gone"}, headers=headers)
    assert bogus.status_code == 422


def test_status_change_needs_a_token(client: TestClient) -> None:
    response = client.post("/api/v1/alerts/1/status", json={"status": "open"})
    assert response.status_code == 401


def test_rules_endpoint_is_404_without_a_rule_set(store: Store) -> None:
    with TestClient(create_app(store), base_url="http://localhost") as client:
        response = client.get("/api/v1/rules", headers=bearer(store, "viewer"))
    assert response.status_code == 404
