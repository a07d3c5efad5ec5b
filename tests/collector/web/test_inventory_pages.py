"""The inventory pages: what they show, their links, and hostile text escaped everywhere."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from collector.store import Store
from collector.web.app import create_app
from collector.web.inventory_pages import router
from tests.collector.inventory_kit import D_EMBED, D_LLAMA, HOSTILE_PATH, T0, Kit, build_fleet
from tests.collector.web.web_kit import PASSWORDS, dashboard

PAGES = [
    "/",
    "/hosts",
    "/hosts/agent-gamma",
    "/models",
    f"/models/{D_LLAMA}",
    "/models/files",
    "/models/files?q=script",
    "/processes?include_stopped=true",
    "/search?q=script",
    "/search?q=bold",
    "/api/docs",
]


@pytest.fixture
def kit(store: Store) -> Kit:
    return build_fleet(store)


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    app = create_app(store, passwords=PASSWORDS)
    with dashboard(app, store, username="vera", role="viewer") as test_client:
        yield test_client


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.styles = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.styles += "style" in found or tag in ("style", "script")
        if found.get("href"):
            self.hrefs.append(str(found["href"]))


def parse(html: str) -> _Links:
    links = _Links()
    links.feed(html)
    return links


@pytest.mark.parametrize("path", PAGES)
def test_pages_render_with_hostile_text_escaped_and_no_inline_style(
    client: TestClient, kit: Kit, path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200, path
    html = response.text
    assert "<script>" not in html and "<b>bold</b>" not in html
    assert parse(html).styles == 0, "the CSP forbids inline style and scripts"


def test_hostile_path_shows_escaped_on_the_pages_that_list_it(client: TestClient, kit: Kit) -> None:
    for path in ["/hosts/agent-gamma", "/models/files", "/search?q=script"]:
        assert "&lt;script&gt;alert(1)&lt;/script&gt;.gguf" in client.get(path).text, path
    assert "&lt;b&gt;bold&lt;/b&gt;" in client.get("/models").text


def test_overview_draws_its_charts_as_svg(client: TestClient, kit: Kit) -> None:
    html = client.get("/").text
    for chart in ["agents", "alerts", "kind", "format", "size", "top"]:
        assert f'id="chart-{chart}"' in html, chart
    assert html.count("<svg") == 6
    assert '<g data-label="llm" data-value="4">' in html
    assert f'href="/models/{D_LLAMA}"' in html  # the top model links to its page
    assert (
        '<div data-count="models"><dt><a href="/models/files">Model files</a></dt><dd>10</dd>'
        in html
    )


def test_online_and_silent_follow_the_clock(store: Store, kit: Kit) -> None:
    app = FastAPI()
    app.include_router(
        router(store, has_rules=False, clock=lambda: T0 + timedelta(hours=2, minutes=5))
    )
    with TestClient(app) as client:
        html = client.get("/").text
        assert '<g data-label="online" data-value="1">' in html
        assert "state-online" in client.get("/hosts/agent-alpha").text
        assert "state-silent" in client.get("/hosts/agent-beta").text


def test_a_host_page_shows_models_processes_alerts_health_and_enrollment(
    client: TestClient, kit: Kit
) -> None:
    html = client.get("/hosts/agent-alpha").text
    assert 'data-path="/home/a/Downloads/evil.pkl"' in html
    assert 'data-path="/home/a/Downloads/old.gguf"' not in html  # removed
    assert '<tr data-pid="4242">' in html and "6 GB" in html and "42.5 %" in html
    assert "Dangerous pickle &lt;x&gt;" in html
    assert 'href="/alerts?host=alpha"' in html
    assert (
        '<tr data-field="agent.health.cpu_percent"><th scope="row">cpu_percent</th><td>3.5</td>'
        in html
    )
    assert "<dt>Group</dt><dd>ml</dd>" in html


def test_a_digest_page_says_where_the_model_is(client: TestClient, kit: Kit) -> None:
    html = client.get(f"/models/{D_LLAMA}").text
    assert "<dt>Hosts</dt><dd>3</dd>" in html and "<dt>Files</dt><dd>4</dd>" in html
    for path in ["/Users/b/.ollama/models/blobs/llama", "C:\\Users\\g\\models\\llama.gguf"]:
        assert f'data-path="{path}"' in html
    assert '<tr data-field="ai.model.license">' in html


def test_unknown_or_malformed_ids_are_not_found_pages(client: TestClient, kit: Kit) -> None:
    for path in ["/hosts/nobody", "/hosts/%00", "/models/" + "0" * 64, "/models/xyz"]:
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html")


def test_sortable_headers_and_pages_by_cursor(client: TestClient, kit: Kit) -> None:
    first = client.get("/models/files?limit=4&sort=-size").text
    links = parse(first).hrefs
    assert "/models/files?limit=4&sort=size" in [h.replace("&amp;", "&") for h in links]
    assert 'aria-sort="descending"' in first
    nxt = re.search(r'<a rel="next" href="([^"]+)"', first)
    assert nxt is not None
    second = client.get(nxt.group(1).replace("&amp;", "&")).text
    shown = set(re.findall(r'data-path="([^"]+)"', first))
    assert shown and not shown & set(re.findall(r'data-path="([^"]+)"', second))
    assert 'rel="first"' in second


def test_filter_forms_filter(client: TestClient, kit: Kit) -> None:
    html = client.get("/models?model_format=safetensors").text
    assert f'data-sha256="{D_EMBED}"' in html and f'data-sha256="{D_LLAMA}"' not in html
    hosts = client.get("/hosts?group=eng&q=bet").text
    assert 'data-agent-id="agent-beta"' in hosts and 'data-agent-id="agent-gamma"' not in hosts
    assert 'value="eng"' in hosts  # the form keeps what was asked


def test_a_page_as_csv(client: TestClient, kit: Kit) -> None:
    response = client.get("/models/files?format=csv&q=evil")
    assert response.headers["content-type"].startswith("text/csv")
    assert "/home/a/Downloads/evil.pkl" in response.text
    assert "'=cmd|' /C calc'!A0" in response.text


def test_search_groups_hits_by_type_and_pages_one_type(client: TestClient, kit: Kit) -> None:
    html = client.get("/search?q=llama").text
    assert 'id="hits-model"' in html and 'id="hits-path"' in html and 'id="hits-host"' not in html
    one = client.get("/search?q=a&type=path&limit=2").text
    assert one.count('data-type="path"') == 2 and 'rel="next"' in one
    assert 'value="a"' in one  # the header's search box keeps the query
    assert "Nothing found." in client.get("/search?q=zzzz").text


def test_api_docs_list_every_operation(client: TestClient) -> None:
    html = client.get("/api/docs").text
    document = client.get("/api/v1/openapi.json").json()
    for path, item in document["paths"].items():
        for method in item:
            assert f"<code>{method.upper()} {path}</code>" in html, (method, path)
    assert "https://" not in html and "http://" not in html
    assert "<code>model_format</code>" in html and 'id="schema-HostPage"' in html


def test_empty_store_renders_every_page(client: TestClient) -> None:
    for path in ["/", "/hosts", "/models", "/models/files", "/processes", "/search?q=x"]:
        assert client.get(path).status_code == 200, path
    assert HOSTILE_PATH not in client.get("/models/files").text
