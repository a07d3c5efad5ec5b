"""Alert triage through the API: the listing contract (filters, sorts, cursors, CSV), each
analyst change and its audit row, roles, and 4xx (never 5xx) for bad ids and bodies."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from collector.store import Store
from collector.web.app import create_app
from tests.collector.web.web_kit import bearer, seed_alerts, token_id_of

BIGGEST = 2**63 - 1


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store), base_url="http://localhost") as test_client:
        yield test_client


def walk(client: TestClient, headers: dict[str, str], query: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    url = f"/api/v1/alerts?{query}"
    while True:
        body = client.get(url, headers=headers).json()
        items += body["items"]
        if body["next"] is None:
            return items
        url = f"/api/v1/alerts?{query}&cursor={body['next']}"


def test_paging_walks_every_alert_exactly_once(client: TestClient, store: Store) -> None:
    seed_alerts(store, 23)
    headers = bearer(store, "viewer")
    for sort in ["-last_seen", "level", "-level", "rule", "host", "-count", "first_seen"]:
        seen = walk(client, headers, f"limit=4&sort={sort}")
        assert sorted(a["id"] for a in seen) == list(range(1, 24)), sort
    newest = walk(client, headers, "limit=5")
    assert [a["last_seen"] for a in newest] == sorted(
        (a["last_seen"] for a in newest), reverse=True
    )
    severe = walk(client, headers, "limit=5&sort=-level")
    assert severe[0]["level"] == "critical" and severe[-1]["level"] == "low"


def test_filters_combine(client: TestClient, store: Store) -> None:
    seed_alerts(store, 20)
    headers = bearer(store, "viewer")
    picked = walk(client, headers, "rule=rule-1&level=high&host=laptop-1")
    assert picked and all(
        (a["rule_id"], a["level"], a["host.name"]) == ("rule-1", "high", "laptop-1") for a in picked
    )
    assert walk(client, headers, "status=resolved") == []
    assert len(walk(client, headers, "unassigned=true")) == 20


def test_a_cursor_for_another_sort_or_forged_is_400(client: TestClient, store: Store) -> None:
    seed_alerts(store, 5)
    headers = bearer(store, "viewer")
    first = client.get("/api/v1/alerts?limit=2", headers=headers).json()
    other = client.get(f"/api/v1/alerts?limit=2&sort=level&cursor={first['next']}", headers=headers)
    assert other.status_code == 400 and other.json()["field"] == "cursor"
    for query in ["cursor=%%%", "sort=summary", "limit=0", "limit=1001", "limit=x"]:
        assert client.get(f"/api/v1/alerts?{query}", headers=headers).status_code == 400, query
    for query in ["status=bogus", "level=loud", "unassigned=maybe"]:
        assert client.get(f"/api/v1/alerts?{query}", headers=headers).status_code == 422, query


def test_csv_gives_the_same_rows_with_a_next_link(client: TestClient, store: Store) -> None:
    seed_alerts(store, 5, title="=HYPERLINK(evil)")
    headers = {**bearer(store, "viewer"), "Accept": "text/csv"}
    response = client.get("/api/v1/alerts?limit=3", headers=headers)
    assert response.headers["content-type"].startswith("text/csv")
    assert 'rel="next"' in response.headers["link"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 3 and rows[0]["id"] and "assignee" in rows[0]
    assert all(r["rule_title"].startswith("'=HYPERLINK") for r in rows)


def test_triage_one_alert_and_read_it_back(client: TestClient, store: Store) -> None:
    seed_alerts(store, 2)
    headers = bearer(store, "analyst")
    actor = f"api-token:{token_id_of(headers)}"
    status = client.post(
        "/api/v1/alerts/1/status",
        json={"status": "acknowledged", "reason": "mine"},
        headers=headers,
    )
    assert status.json() == {"id": 1, "status": "acknowledged", "by": actor, "until": None}
    assign = client.post("/api/v1/alerts/1/assign", json={"assignee": " alice "}, headers=headers)
    assert assign.json() == {"id": 1, "assignee": "alice", "by": actor}
    comment = client.post(
        "/api/v1/alerts/1/comments", json={"text": "<b>seen</b>"}, headers=headers
    )
    assert comment.status_code == 201 and comment.json()["actor"] == actor
    alert = client.get("/api/v1/alerts/1", headers=headers).json()
    assert (alert["status"], alert["assignee"]) == ("acknowledged", "alice")
    assert [h["status"] for h in alert["history"]] == ["open", "acknowledged"]
    comments = client.get("/api/v1/alerts/1/comments", headers=headers).json()
    assert [c["text"] for c in comments["items"]] == ["<b>seen</b>"] and comments["next"] is None
    unassign = client.post("/api/v1/alerts/1/assign", json={"assignee": None}, headers=headers)
    assert unassign.json()["assignee"] is None
    audit = client.get(
        "/api/v1/audit?target=alert:1&sort=id", headers=bearer(store, "admin")
    ).json()["items"]
    assert [(e["action"], e["actor"]) for e in audit] == [
        ("alert.status", actor),
        ("alert.assign", actor),
        ("alert.comment", actor),
        ("alert.assign", actor),
    ]
    assert audit[3]["before"] == {"assignee": "alice"} and audit[3]["after"] == {"assignee": None}


def test_bulk_changes_each_alert_once_and_audits_each(client: TestClient, store: Store) -> None:
    seed_alerts(store, 4)
    headers = bearer(store, "analyst")
    body = {"ids": [1, 2, 2, 999], "status": "resolved", "reason": "fixed", "assignee": "bob"}
    result = client.post("/api/v1/alerts/bulk", json=body, headers=headers).json()
    assert result == {"changed": [1, 2], "missing": [999]}
    listed = {a["id"]: a for a in walk(client, headers, "limit=10")}
    assert [(listed[i]["status"], listed[i]["assignee"]) for i in (1, 2, 3)] == [
        ("resolved", "bob"),
        ("resolved", "bob"),
        ("open", None),
    ]
    audit = client.get("/api/v1/audit?limit=100", headers=bearer(store, "admin")).json()["items"]
    assert sorted((e["target"], e["action"]) for e in audit) == [
        ("alert:1", "alert.assign"),
        ("alert:1", "alert.status"),
        ("alert:2", "alert.assign"),
        ("alert:2", "alert.status"),
    ]
    only_assign = client.post(
        "/api/v1/alerts/bulk", json={"ids": [3], "assignee": None}, headers=headers
    )
    assert only_assign.json() == {"changed": [3], "missing": []}
    nothing = client.post("/api/v1/alerts/bulk", json={"ids": [3]}, headers=headers)
    assert nothing.status_code == 422 and nothing.json()["field"] == "change"


def test_viewers_read_but_may_not_triage(client: TestClient, store: Store) -> None:
    seed_alerts(store, 1)
    viewer = bearer(store, "viewer")
    assert client.get("/api/v1/alerts/1", headers=viewer).status_code == 200
    for path, body in [
        ("/api/v1/alerts/1/status", {"status": "resolved"}),
        ("/api/v1/alerts/1/assign", {"assignee": "me"}),
        ("/api/v1/alerts/1/comments", {"text": "hi"}),
        ("/api/v1/alerts/bulk", {"ids": [1], "status": "resolved"}),
    ]:
        response = client.post(path, json=body, headers=viewer)
        assert response.status_code == 403, path
        assert response.json() == {"detail": "needs role analyst, token has viewer"}
    assert client.get("/api/v1/audit", headers=viewer).status_code == 403
    alert = client.get("/api/v1/alerts/1", headers=viewer).json()
    assert (alert["status"], alert["assignee"]) == ("open", None)


@pytest.mark.parametrize(
    "alert_id", ["0", "-1", str(BIGGEST + 1), "9223372036854775808", "x", "1.5"]
)
def test_ids_outside_a_bigint_are_422_on_every_route(
    client: TestClient, store: Store, alert_id: str
) -> None:
    headers = bearer(store, "admin")
    for method, path, body in [
        ("GET", "", None),
        ("GET", "/history", None),
        ("GET", "/comments", None),
        ("POST", "/status", {"status": "open"}),
        ("POST", "/assign", {"assignee": "a"}),
        ("POST", "/comments", {"text": "a"}),
    ]:
        response = client.request(
            method, f"/api/v1/alerts/{alert_id}{path}", json=body, headers=headers
        )
        assert response.status_code == 422, (path, response.text)


def test_the_biggest_id_is_a_404(client: TestClient, store: Store) -> None:
    headers = bearer(store, "admin")
    for method, path, body in [
        ("GET", "", None),
        ("GET", "/history", None),
        ("GET", "/comments", None),
        ("POST", "/status", {"status": "open"}),
        ("POST", "/assign", {"assignee": "a"}),
        ("POST", "/comments", {"text": "a"}),
    ]:
        response = client.request(
            method, f"/api/v1/alerts/{BIGGEST}{path}", json=body, headers=headers
        )
        assert response.status_code == 404, (path, response.text)
    bulk = client.post(
        "/api/v1/alerts/bulk", json={"ids": [BIGGEST + 1], "status": "open"}, headers=headers
    )
    assert bulk.status_code == 422


def test_bad_bodies_are_422_with_a_reason(client: TestClient, store: Store) -> None:
    seed_alerts(store, 1)
    headers = bearer(store, "analyst")
    for path, body in [
        ("status", {"status": "suppressed"}),
        ("status", {"status": "suppressed", "until": "2999-01-01T00:00:00"}),
        ("status", {"status": "suppressed", "until": "9999-12-31T23:00:00-05:00"}),
        ("status", {"status": "open", "reason": "x" * 2001}),
        ("assign", {"assignee": "a" * 256}),
        ("assign", {"assignee": "nul\u0000"}),
        ("comments", {"text": "   "}),
    ]:
        response = client.post(f"/api/v1/alerts/1/{path}", json=body, headers=headers)
        assert response.status_code == 422, (path, body)
        assert response.json()["detail"], (path, body)
    surrogate = client.post(
        "/api/v1/alerts/1/comments",
        content=b'{"text": "\\ud800"}',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert surrogate.status_code == 422 and "surrogate" in surrogate.json()["detail"]
    alert = client.get("/api/v1/alerts/1", headers=headers).json()
    assert (alert["status"], alert["assignee"]) == ("open", None)
