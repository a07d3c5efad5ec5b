"""Whatever ids, bodies and query strings a client sends to the triage and admin routes,
the answer is a 2xx or a 4xx with a reason, never a 5xx, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.store import Store
from collector.web.app import create_app
from tests.collector.web.web_kit import bearer, seed_alerts

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# Percent-encoded as a client would: NUL bytes and the like reach the server.
ids = st.integers(min_value=-(2**70), max_value=2**70).map(str) | st.text(max_size=30).map(
    lambda t: quote(t, safe="")
).filter(lambda t: t not in ("", ".", ".."))
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
bodies = st.dictionaries(
    st.sampled_from(
        [
            "status",
            "until",
            "reason",
            "assignee",
            "text",
            "ids",
            "group",
            "uses",
            "role",
            "expires_in_hours",
        ]
    ),
    json_values
    | st.sampled_from(["suppressed", "open", "2999-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00"])
    | st.lists(st.integers(min_value=-(2**70), max_value=2**70), max_size=5),
    max_size=5,
)


@pytest.fixture
def client(store: Store) -> Iterator[tuple[TestClient, dict[str, str]]]:
    seed_alerts(store, 3)
    with TestClient(
        create_app(store, ca_fingerprint="ab" * 32), base_url="http://localhost"
    ) as test_client:
        yield test_client, bearer(store, "admin")


def no_5xx(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["detail"]


@SETTINGS
@given(alert_id=ids, body=bodies)
def test_alert_routes_answer_4xx_at_worst(
    client: tuple[TestClient, dict[str, str]], alert_id: str, body: dict[str, object]
) -> None:
    test_client, headers = client
    for path in ["status", "assign", "comments"]:
        no_5xx(test_client.post(f"/api/v1/alerts/{alert_id}/{path}", json=body, headers=headers))
    for path in ["", "/history", "/comments"]:
        no_5xx(test_client.get(f"/api/v1/alerts/{alert_id}{path}", headers=headers))
    no_5xx(test_client.post("/api/v1/alerts/bulk", json=body, headers=headers))


@SETTINGS
@given(
    params=st.dictionaries(
        st.sampled_from(
            [
                "status",
                "level",
                "rule",
                "host",
                "assignee",
                "unassigned",
                "sort",
                "cursor",
                "limit",
                "format",
            ]
        ),
        st.text(max_size=40),
        max_size=5,
    )
)
def test_alert_listing_answers_4xx_at_worst(
    client: tuple[TestClient, dict[str, str]], params: dict[str, str]
) -> None:
    test_client, headers = client
    no_5xx(test_client.get("/api/v1/alerts", params=params, headers=headers))
    no_5xx(test_client.get("/api/v1/audit", params=params, headers=headers))
    no_5xx(test_client.get("/alerts", params=params))


@SETTINGS
@given(token_id=ids, body=bodies)
def test_admin_routes_answer_4xx_at_worst(
    client: tuple[TestClient, dict[str, str]], token_id: str, body: dict[str, object]
) -> None:
    test_client, headers = client
    for path in ["tokens", "api-tokens", "agents"]:
        no_5xx(test_client.post(f"/api/v1/{path}/{token_id}/revoke", headers=headers))
    for path in ["tokens", "api-tokens"]:
        no_5xx(test_client.post(f"/api/v1/{path}", json=body, headers=headers))
    no_5xx(test_client.post(f"/alerts/{token_id}/comments", data={"text": "x"}))
    no_5xx(test_client.get(f"/alerts/{token_id}"))


forms = st.dictionaries(
    st.sampled_from(
        [
            "alert_id",
            "do",
            "status",
            "until",
            "reason",
            "assignee",
            "back",
            "text",
            "group",
            "uses",
            "expires_in_hours",
            "role",
        ]
    ),
    st.text(max_size=30) | st.sampled_from(["status", "assign", "suppressed", "9999-12-31T23:59"]),
    max_size=6,
)


@SETTINGS
@given(form=forms, alert_id=ids)
def test_page_forms_answer_4xx_at_worst(
    client: tuple[TestClient, dict[str, str]], form: dict[str, str], alert_id: str
) -> None:
    test_client, _ = client
    for path in [
        "/alerts/bulk",
        f"/alerts/{alert_id}/status",
        f"/alerts/{alert_id}/assign",
        "/tokens",
        "/api-tokens",
    ]:
        response = test_client.post(path, data=form, follow_redirects=False)
        assert response.status_code < 500, (path, response.text)
