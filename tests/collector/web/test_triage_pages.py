"""The triage pages: filter, sort and page the alert list, change one alert or many with a
form, and see its history and comments; every form carries the CSRF field, every hostile
string is escaped, and only analysts change anything."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from collector.paging import Listing
from collector.store import Store
from collector.store.audit import AuditFilter
from collector.web.app import create_app
from tests.collector.web.web_kit import PASSWORDS, dashboard, seed_alerts

Seeder = Callable[[Store], Any]
FORM = re.compile(r"<form [^>]*method=\"post\"[^>]*>(.*?)</form>", re.S)


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    app = create_app(store, passwords=PASSWORDS)
    with dashboard(app, store, username="alice", role="analyst") as test_client:
        yield test_client


def audit(store: Store) -> list[dict[str, Any]]:
    """The audit log without the sign-in that opened the test's session."""
    rows = store.page_audit(AuditFilter(), Listing(limit=1000, sort="id")).items
    return [row for row in rows if not str(row["action"]).startswith("auth.")]


def rows(page: str) -> list[str]:
    return re.findall(r'<tr data-alert-id="(\d+)"', page)


def test_every_post_form_carries_the_csrf_field(client: TestClient, store: Store) -> None:
    seed_alerts(store, 2)
    for path in ["/alerts", "/alerts/1"]:
        forms = FORM.findall(client.get(path).text)
        assert forms, path
        for form in forms:
            assert re.search(r'<input type="hidden" name="csrf_token" value="[^"]+">', form), path


def test_the_list_filters_sorts_and_pages(client: TestClient, store: Store) -> None:
    seed_alerts(store, 30)
    url: str | None = "/alerts?limit=4&rule=rule-1"
    pages: list[list[str]] = []
    while url is not None:
        page = client.get(url).text
        pages.append(rows(page))
        assert len(re.findall(r'data-rule-id="rule-1"', page)) == len(pages[-1])
        found = re.search(r'<a rel="next" href="([^"]+)"', page)
        url = None if found is None else found.group(1).replace("&amp;", "&")
    assert [len(p) for p in pages] == [4, 4, 2]  # rule-1 has 10 of the 30 alerts
    assert len({i for p in pages for i in p}) == 10
    first = client.get("/alerts?limit=4").text
    assert 'aria-sort="descending"' in first  # last seen, newest first
    assert 'href="/alerts?limit=4&amp;sort=last_seen"' in first  # flips the direction
    severe = client.get("/alerts?sort=-level").text
    levels = re.findall(r'data-level="(\w+)"', severe)
    assert levels[0] == "critical" and levels[-1] == "low"


def test_a_bad_filter_value_shows_everything_and_a_bad_cursor_is_400(
    client: TestClient, store: Store
) -> None:
    seed_alerts(store, 3)
    assert len(rows(client.get("/alerts?status=bogus&level=loud").text)) == 3
    assert client.get("/alerts?cursor=nonsense").status_code == 400


def test_one_alert_is_acknowledged_assigned_and_commented(client: TestClient, store: Store) -> None:
    seed_alerts(store, 1)
    status = client.post(
        "/alerts/1/status",
        data={"status": "acknowledged", "reason": "on it"},
        follow_redirects=False,
    )
    assert status.status_code == 303 and status.headers["location"] == "/alerts/1"
    client.post("/alerts/1/assign", data={"assignee": "bob"})
    client.post("/alerts/1/comments", data={"text": "<script>alert(1)</script>"})
    page = client.get("/alerts/1").text
    assert 'data-status="acknowledged"' in page
    assert '<dd id="alert-assignee">bob</dd>' in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    assert [(e["actor"], e["action"]) for e in audit(store)] == [
        ("user:alice", "alert.status"),
        ("user:alice", "alert.assign"),
        ("user:alice", "alert.comment"),
    ]
    assert page.count('<tr data-action="alert.') == 3


def test_suppressing_without_until_shows_why(client: TestClient, store: Store) -> None:
    seed_alerts(store, 1)
    response = client.post("/alerts/1/status", data={"status": "suppressed"})
    assert response.status_code == 422
    assert 'id="form-error"' in response.text and "until" in response.text
    until = client.post(
        "/alerts/1/status", data={"status": "suppressed", "until": "2999-01-01T00:00"}
    )
    assert until.status_code == 200 and "until 2999-01-01 00:00:00 UTC" in until.text
    assert (
        client.post("/alerts/1/status", data={"status": "open", "until": "soon"}).status_code == 422
    )


def test_bulk_form_changes_the_checked_alerts_and_comes_back(
    client: TestClient, store: Store
) -> None:
    seed_alerts(store, 5)
    response = client.post(
        "/alerts/bulk",
        data={"alert_id": ["1", "3"], "do": "status", "status": "resolved", "back": "status=open"},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/alerts?status=open"
    assert sorted(rows(client.get("/alerts?status=resolved").text)) == ["1", "3"]
    client.post("/alerts/bulk", data={"alert_id": ["2", "3"], "do": "assign", "assignee": "carol"})
    assert sorted(rows(client.get("/alerts?assignee=carol").text)) == ["2", "3"]
    assert len(audit(store)) == 4
    assert client.post("/alerts/bulk", data={"do": "assign"}).status_code == 422
    assert client.post("/alerts/bulk", data={"alert_id": "x", "do": "assign"}).status_code == 422


def test_the_list_has_a_checkbox_per_alert_in_the_bulk_form(
    client: TestClient, store: Store
) -> None:
    seed_alerts(store, 2)
    page = client.get("/alerts").text
    assert page.count('form="bulk" name="alert_id"') == 2
    assert '<form id="bulk"' in page


def test_viewers_see_no_forms_and_may_not_post(store: Store) -> None:
    seed_alerts(store, 1)
    app = create_app(store, passwords=PASSWORDS)
    with dashboard(app, store, username="victor", role="viewer") as client:
        assert '<form id="bulk"' not in client.get("/alerts").text
        page = client.get("/alerts/1").text
        assert 'id="status-form"' not in page and 'id="comment-form"' not in page
        for path, data in [
            ("/alerts/1/status", {"status": "resolved"}),
            ("/alerts/1/assign", {"assignee": "me"}),
            ("/alerts/1/comments", {"text": "hi"}),
            ("/alerts/bulk", {"alert_id": "1", "do": "status", "status": "resolved"}),
        ]:
            assert client.post(path, data=data).status_code == 403, path
    assert audit(store) == []


@pytest.mark.parametrize("alert_id", ["0", "9223372036854775808", "abc", "-3", "99"])
def test_bad_or_unknown_alert_ids_are_404(client: TestClient, alert_id: str) -> None:
    assert client.get(f"/alerts/{alert_id}").status_code == 404
    assert client.post(f"/alerts/{alert_id}/comments", data={"text": "x"}).status_code == 404


def test_hostile_strings_are_escaped_in_the_triage_pages(
    client: TestClient, store: Store, seed_fleet: Seeder
) -> None:
    seed_fleet(store)
    hostile = '"><img src=x onerror=alert(1)>'
    client.post("/alerts/1/assign", data={"assignee": hostile})
    for path in ["/alerts", "/alerts/1", f"/alerts?assignee={quote(hostile)}"]:
        page = client.get(path).text
        assert "<script>" not in page and "<img" not in page and "<b>" not in page, path
        assert "Unapproved model format &lt;pickle&gt;" in page, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.gguf" in client.get("/alerts/1").text
    reflected = client.get("/alerts?rule=%22%3E%3Cb%3E&host=%3Cscript%3E").text
    assert "<b>" not in reflected and "<script>" not in reflected
    assert 'value="&#34;&gt;&lt;b&gt;"' in reflected


def test_a_form_posted_from_another_site_is_refused(client: TestClient, store: Store) -> None:
    seed_alerts(store, 1)
    for headers in [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://localhost"},
    ]:
        response = client.post("/alerts/1/assign", data={"assignee": "mallory"}, headers=headers)
        assert response.status_code == 403, headers
    for headers in [{"Origin": "http://localhost"}, {"Sec-Fetch-Site": "same-origin"}]:
        ours = client.post("/alerts/1/assign", data={"assignee": "alice"}, headers=headers)
        assert ours.status_code == 200, headers  # followed the redirect to the alert
    assert [e["after"]["assignee"] for e in audit(store)] == ["alice", "alice"]
