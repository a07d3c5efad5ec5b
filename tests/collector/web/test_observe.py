"""/healthz and /metrics of the HTTP app: who may read them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from collector.store import Store
from collector.telemetry import PrometheusMetrics
from collector.web.app import create_app
from collector.web.auth import mint_api_token

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_healthz_needs_no_token(store: Store) -> None:
    with TestClient(create_app(store), base_url="http://localhost") as client:
        response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok", "store": "ok"})


@pytest.mark.parametrize("role", ["viewer", "analyst", "admin"])
def test_metrics_take_a_token_of_any_role(store: Store, role: str) -> None:
    metrics = PrometheusMetrics()
    metrics.refused("signature", 3)
    token, token_id, digest = mint_api_token()
    store.add_api_token(token_id=token_id, secret_sha256=digest, role=role, created_at=NOW)
    with TestClient(
        create_app(store, metrics=metrics.render), base_url="http://localhost"
    ) as client:
        assert client.get("/metrics").status_code == 401
        response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert 'shadowai_refusals_total{code="signature"} 3.0' in response.text


def test_a_revoked_token_reads_no_metrics(store: Store) -> None:
    token, token_id, digest = mint_api_token()
    store.add_api_token(token_id=token_id, secret_sha256=digest, role="admin", created_at=NOW)
    store.revoke_api_token(token_id, now=NOW)
    with TestClient(
        create_app(store, metrics=PrometheusMetrics().render), base_url="http://localhost"
    ) as client:
        response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def test_without_a_registry_there_is_no_metrics_route(store: Store) -> None:
    with TestClient(create_app(store), base_url="http://localhost") as client:
        assert client.get("/metrics").status_code == 404
