"""GET /api/v1/export/cyclonedx: one CycloneDX 1.6 document of the fleet or of one host."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from fastapi.testclient import TestClient

from collector.store import Store
from collector.web.app import create_app
from collector.web.auth import mint_api_token

Seeder = Callable[[Store], Any]
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store), base_url="http://localhost") as test_client:
        yield test_client


def viewer(store: Store) -> dict[str, str]:
    token, token_id, digest = mint_api_token()
    store.add_api_token(token_id=token_id, secret_sha256=digest, role="viewer", created_at=NOW)
    return {"Authorization": f"Bearer {token}"}


def test_the_fleet_bom_is_valid_cyclonedx_with_every_model(
    client: TestClient, store: Store, seed_fleet: Seeder
) -> None:
    fleet = seed_fleet(store)
    response = client.get("/api/v1/export/cyclonedx", headers=viewer(store))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/vnd.cyclonedx+json")
    assert "shadowai-fleet.cdx.json" in response.headers["content-disposition"]
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(response.text)
    assert error is None, error
    text = json.dumps(response.json())
    assert fleet.model_path in text


def test_one_host_and_an_unknown_host(client: TestClient, store: Store, seed_fleet: Seeder) -> None:
    fleet = seed_fleet(store)
    headers = viewer(store)

    host = client.get(f"/api/v1/export/cyclonedx?host={fleet.host_name}", headers=headers)
    unknown = client.get("/api/v1/export/cyclonedx?host=nobody", headers=headers)

    assert host.status_code == 200 and fleet.model_path in host.text
    assert unknown.status_code == 404 and "nobody" in unknown.json()["detail"]


def test_the_export_needs_a_token(client: TestClient) -> None:
    assert client.get("/api/v1/export/cyclonedx").status_code == 401
