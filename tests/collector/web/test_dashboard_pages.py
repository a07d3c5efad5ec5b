"""Dashboard pages render the store's data, escaped, with stable ids for tests (signed in)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from collector.store import Store
from collector.web.app import create_app, human_bytes, human_count, short_sha, when
from tests.collector.web.web_kit import BASE_URL, PASSWORDS, sign_in

Seeder = Callable[[Store], Any]


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store, passwords=PASSWORDS), base_url=BASE_URL) as test_client:
        yield sign_in(test_client, store, "viewer")


def test_empty_store_renders_every_page(client: TestClient) -> None:
    for path in ["/", "/hosts", "/models", "/models/files", "/processes", "/alerts"]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
    assert "No alerts." in client.get("/alerts").text


def test_overview_counts_and_latest_alerts(
    client: TestClient, store: Store, seed_fleet: Seeder
) -> None:
    fleet = seed_fleet(store)
    page = client.get("/").text
    assert '<div data-count="hosts"><dt><a href="/hosts">Hosts</a></dt><dd>1</dd>' in page
    assert "<dd>2</dd>" in page  # two models
    assert '<table id="latest-alerts">' in page
    assert f'data-rule-id="{fleet.rule_id}"' in page


def test_model_files_page_shows_readable_model_facts(
    client: TestClient, store: Store, seed_fleet: Seeder
) -> None:
    fleet = seed_fleet(store)
    page = client.get("/models/files").text
    assert '<table id="files">' in page
    assert f'data-path="{fleet.model_path}"' in page
    for shown in ["Meta-Llama-3-8B-Instruct", "llama", "Q4_K_M", "8B", "4.9 GB", "abababababab"]:
        assert shown in page, shown
    assert fleet.host_name in page


def test_models_page_shows_one_row_per_digest(
    client: TestClient, store: Store, seed_fleet: Seeder
) -> None:
    seed_fleet(store)
    page = client.get("/models").text
    assert '<table id="models">' in page
    assert page.count("<tr data-sha256=") == 1  # the hostile file has no digest
    for shown in ["Meta-Llama-3-8B-Instruct", "gguf", "8B", "4.9 GB", "abababababab"]:
        assert shown in page, shown


def test_hostile_path_is_escaped_everywhere(
    client: TestClient, store: Store, seed_fleet: Seeder
) -> None:
    seed_fleet(store)
    for path in ["/", "/models/files", "/alerts"]:
        page = client.get(path).text
        assert "<script>" not in page, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;.gguf" in page, path
    assert "<b>bold</b>" not in client.get("/models/files").text
    assert "Unapproved model format &lt;pickle&gt;" in client.get("/alerts").text


def test_alerts_page_lists_and_filters_by_status(
    client: TestClient, store: Store, seed_fleet: Seeder
) -> None:
    fleet = seed_fleet(store)
    page = client.get("/alerts").text
    assert '<table id="alerts">' in page
    assert f'data-rule-id="{fleet.rule_id}"' in page
    assert 'data-status="open"' in page
    assert "2025-03-01 12:05:00 UTC" in page
    assert f'data-rule-id="{fleet.rule_id}"' not in client.get("/alerts?status=resolved").text
    assert f'data-rule-id="{fleet.rule_id}"' in client.get("/alerts?status=bogus").text


def test_hosts_page_lists_the_agent(client: TestClient, store: Store, seed_fleet: Seeder) -> None:
    fleet = seed_fleet(store)
    page = client.get("/hosts").text
    assert f'<tr data-agent-id="{fleet.agent_id}">' in page
    assert "ml-team" in page


def test_rules_page_exists_only_with_a_rule_summary(store: Store) -> None:
    rules: list[dict[str, object]] = [{"id": "r-1", "title": "No <pickle>", "level": "high"}]
    app = create_app(store, rules_summary=lambda: rules, passwords=PASSWORDS)
    with TestClient(app, base_url=BASE_URL) as client:
        sign_in(client, store)
        page = client.get("/rules").text
        assert 'data-rule-id="r-1"' in page and "No &lt;pickle&gt;" in page
        assert 'href="/rules"' in client.get("/").text
    with TestClient(create_app(store, passwords=PASSWORDS), base_url=BASE_URL) as client:
        sign_in(client, store)
        assert client.get("/rules").status_code == 404
        assert 'href="/rules"' not in client.get("/").text


def test_pages_load_nothing_from_elsewhere(client: TestClient) -> None:
    response = client.get("/")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "http://" not in response.text and "https://" not in response.text
    css = client.get("/static/style.css")
    assert css.status_code == 200 and "http" not in css.text


def test_no_swagger_ui_that_would_fetch_from_a_cdn(client: TestClient) -> None:
    assert client.get("/docs").status_code == 404


def test_numbers_read_the_way_people_say_them() -> None:
    assert [human_count(n) for n in [7_241_732_096, 13_000_000_000, 125_000_000, 999]] == [
        "7.2B",
        "13B",
        "125M",
        "999",
    ]
    assert human_count(None) == "" and human_count("x") == "x" and human_count(True) == "True"
    assert [human_bytes(n) for n in [4_368_439_584, 1_500, 12]] == ["4.4 GB", "1.5 kB", "12 B"]
    assert short_sha("ab" * 32) == "abababababab" and short_sha(None) == ""
    assert when("2025-03-01T12:00:00+00:00") == "2025-03-01 12:00:00 UTC"
    assert when("yesterday") == "yesterday" and when(None) == ""
