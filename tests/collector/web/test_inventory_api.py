"""The inventory API: the listing contract over HTTP, CSV equal to JSON, 4xx for bad input."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.paging import encode_cursor
from collector.store import Store
from collector.web.app import create_app
from collector.web.auth import mint_api_token
from collector.web.csvout import cell
from tests.collector.inventory_kit import D_LLAMA, D_PICKLE, HOSTILE_PATH, Kit, build_fleet

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SEARCH = {"q": "a", "type": "path"}
# (path, what identifies a row, a sort to walk it by)
LISTINGS = [
    ("/api/v1/hosts", ("agent_id",), "-last_seen"),
    ("/api/v1/models", ("agent_id", "file.path"), "-size"),
    ("/api/v1/models/by-digest", ("sha256",), "hosts"),
    (f"/api/v1/models/by-digest/{D_LLAMA}", ("agent_id", "file.path"), "path"),
    ("/api/v1/processes", ("agent_id", "process.pid"), "-gpu_memory"),
    ("/api/v1/events", ("id",), "id"),
    ("/api/v1/agents", ("agent_id",), "name"),
    ("/api/v1/search", ("label",), "-label"),  # with SEARCH below
]


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store), base_url="http://localhost") as test_client:
        yield test_client


@pytest.fixture
def kit(store: Store) -> Kit:
    return build_fleet(store)


@pytest.fixture
def viewer(store: Store) -> dict[str, str]:
    token, token_id, digest = mint_api_token()
    store.add_api_token(token_id=token_id, secret_sha256=digest, role="viewer", created_at=NOW)
    return {"Authorization": f"Bearer {token}"}


def get(client: TestClient, path: str, headers: dict[str, str], **params: Any) -> Any:
    if path == "/api/v1/search" and "q" not in params:
        params = {**SEARCH, **params}
    response = client.get(path, headers=headers, params=params)
    assert response.status_code == 200, (path, response.text)
    return response.json()


def walk(client: TestClient, path: str, headers: dict[str, str], **params: Any) -> list[Any]:
    """Every item, following `next` as a client must."""
    items, cursor = [], None
    while True:
        page = get(client, path, headers, **params, **({"cursor": cursor} if cursor else {}))
        items += page["items"]
        cursor = page["next"]
        if cursor is None:
            return items


@pytest.mark.parametrize(("path", "ident", "sort"), LISTINGS)
def test_following_next_gives_every_row_once_in_order(
    client: TestClient,
    kit: Kit,
    viewer: dict[str, str],
    path: str,
    ident: tuple[str, ...],
    sort: str,
) -> None:
    key = lambda item: tuple(item[name] for name in ident)  # noqa: E731
    whole = [key(i) for i in get(client, path, viewer, limit=1000, sort=sort)["items"]]
    assert whole and len(set(whole)) == len(whole)
    assert [key(i) for i in walk(client, path, viewer, limit=2, sort=sort)] == whole
    flipped = sort[1:] if sort.startswith("-") else f"-{sort}"
    assert [key(i) for i in walk(client, path, viewer, limit=3, sort=flipped)] == whole[::-1]


@pytest.mark.parametrize(("path", "ident", "sort"), LISTINGS)
def test_csv_holds_the_same_rows_as_json(
    client: TestClient,
    kit: Kit,
    viewer: dict[str, str],
    path: str,
    ident: tuple[str, ...],
    sort: str,
) -> None:
    items = get(client, path, viewer, limit=1000, sort=sort)["items"]
    base = {**(SEARCH if path == "/api/v1/search" else {}), "limit": 1000, "sort": sort}
    by_param = client.get(path, headers=viewer, params={**base, "format": "csv"})
    by_accept = client.get(path, headers={**viewer, "Accept": "text/csv"}, params=base)
    assert by_param.headers["content-type"].startswith("text/csv")
    assert by_param.text == by_accept.text
    rows = list(csv.reader(io.StringIO(by_param.text)))
    header = rows[0]
    assert set(ident) <= set(header)
    assert rows[1:] == [[cell(item.get(name)) for name in header] for item in items]


def test_csv_of_a_page_links_the_next_one(
    client: TestClient, kit: Kit, viewer: dict[str, str]
) -> None:
    response = client.get("/api/v1/models?limit=2&format=csv", headers=viewer)
    assert response.headers["link"].endswith('>; rel="next"')
    assert "cursor=" in response.headers["link"]


def test_a_formula_in_a_model_name_is_defused_in_csv(
    client: TestClient, kit: Kit, viewer: dict[str, str]
) -> None:
    text = client.get(f"/api/v1/models?sha256={D_PICKLE}&format=csv", headers=viewer).text
    assert "'=cmd|' /C calc'!A0" in text


def test_host_detail_and_digest_detail(
    client: TestClient, kit: Kit, viewer: dict[str, str]
) -> None:
    host = get(client, "/api/v1/hosts/agent-alpha", viewer)
    assert host["host.name"] == "alpha" and host["enrollment"]["host.group"] == "ml"
    assert host["health"]["agent.health.cpu_percent"] == 3.5
    digest = get(client, f"/api/v1/models/by-digest/{D_LLAMA.upper()}", viewer)
    assert digest["digest"]["hosts"] == 3 and len(digest["items"]) == 4
    assert {i["host.name"] for i in digest["items"]} == {"alpha", "beta", "gamma"}


def test_filters_reach_the_store(client: TestClient, kit: Kit, viewer: dict[str, str]) -> None:
    def paths(**params: Any) -> set[str]:
        return {i["file.path"] for i in get(client, "/api/v1/models", viewer, **params)["items"]}

    assert paths(model_format="pickle") == {"/home/a/Downloads/evil.pkl"}
    assert paths(host="gamma", q="script") == {HOSTILE_PATH}
    assert paths(risk="dangerous", kind="other", origin="user") == {"/home/a/Downloads/evil.pkl"}
    events = get(client, "/api/v1/events", viewer, dataset="shadowai.agent_health")["items"]
    assert len(events) == 4 and events[0]["id"] > events[-1]["id"]  # newest first
    assert get(client, "/api/v1/agents", viewer, revoked="true")["items"] == []
    hosts = get(client, "/api/v1/hosts", viewer, group="eng", os="darwin")["items"]
    assert [h["host.name"] for h in hosts] == ["beta"]


def test_search_hits_say_their_type_and_link(
    client: TestClient, kit: Kit, viewer: dict[str, str]
) -> None:
    hits = get(client, "/api/v1/search", viewer, q="llama")["items"]
    kinds = {(h["type"], h["link"]) for h in hits}
    assert ("model", f"/models/{D_LLAMA}") in kinds
    assert ("path", f"/models/{D_LLAMA}") in kinds
    hosts = get(client, "/api/v1/search", viewer, q="gam")["items"]
    assert [(h["type"], h["link"]) for h in hosts] == [("host", "/hosts/agent-gamma")]


def _forged(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/hosts/%00", 400),
        ("/api/v1/hosts/9223372036854775808", 404),
        ("/api/v1/hosts/" + "x" * 600, 422),
        ("/api/v1/models/by-digest/not-a-digest", 422),
        ("/api/v1/models/by-digest/" + "0" * 64, 404),
        ("/api/v1/models?sha256=abc", 400),
        ("/api/v1/hosts?limit=0", 400),
        ("/api/v1/hosts?limit=1000000", 400),
        ("/api/v1/hosts?limit=99999999999999999999999", 400),
        ("/api/v1/hosts?limit=ten", 422),
        ("/api/v1/hosts?sort=secret", 400),
        ("/api/v1/hosts?cursor=%%%", 400),
        ("/api/v1/hosts?cursor=" + _forged({"s": "name", "k": [1, 2]}), 400),
        ("/api/v1/hosts?cursor=" + _forged({"s": "name", "k": ["a", 2**64]}), 400),
        ("/api/v1/hosts?cursor=" + _forged({"s": "-name", "k": ["a", 1]}), 400),
        ("/api/v1/models?sort=-size&cursor=" + _forged({"s": "-size", "k": [1.5e308, 1]}), 400),
        ("/api/v1/events?cursor=" + encode_cursor([2**63], sort="-id"), 400),
        (
            "/api/v1/agents?sort=last_seen&cursor=" + _forged({"s": "last_seen", "k": ["then", 1]}),
            400,
        ),
        (
            "/api/v1/agents?sort=last_seen&cursor="
            + _forged({"s": "last_seen", "k": ["2026-01-01", 1]}),
            400,
        ),
        ("/api/v1/models?q=%00", 400),
        ("/api/v1/models?format=xml", 422),
        ("/api/v1/search?q=", 422),
        ("/api/v1/search?q=a&type=everything", 422),
    ],
)
def test_bad_ids_and_values_are_4xx_with_a_reason(
    client: TestClient, kit: Kit, viewer: dict[str, str], path: str, status: int
) -> None:
    response = client.get(path, headers=viewer)
    assert response.status_code == status, response.text
    assert response.json()["detail"]


texts = st.text(max_size=30) | st.sampled_from(["", "-", "name", "-size", "path", "0", "1000"])


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    params=st.dictionaries(
        st.sampled_from(
            [
                "limit",
                "cursor",
                "sort",
                "q",
                "agent_id",
                "model_format",
                "risk",
                "sha256",
                "include_removed",
                "format",
            ]
        ),
        texts
        | st.integers(-(2**70), 2**70).map(str)
        | st.binary(max_size=40).map(lambda b: base64.urlsafe_b64encode(b).decode()),
    ),
    path=st.sampled_from(
        [
            "/api/v1/models",
            "/api/v1/hosts",
            "/api/v1/models/by-digest",
            "/api/v1/events",
            "/api/v1/agents",
            "/api/v1/processes",
            "/api/v1/search",
        ]
    ),
)
def test_any_query_parameters_are_answered_2xx_or_4xx(
    client: TestClient, store: Store, viewer: dict[str, str], params: dict[str, str], path: str
) -> None:
    response = client.get(path, headers=viewer, params=params)
    assert response.status_code < 500, (path, params, response.text)
    if response.status_code >= 400:
        assert response.json()["detail"]


def test_openapi_documents_every_listing_and_its_parameters(client: TestClient) -> None:
    document = client.get("/api/v1/openapi.json").json()
    models = document["paths"]["/api/v1/models"]["get"]
    names = {p["name"] for p in models["parameters"]}
    assert {
        "limit",
        "cursor",
        "sort",
        "format",
        "agent_id",
        "model_format",
        "risk",
        "sha256",
        "q",
    } <= names
    assert "text/csv" in models["responses"]["200"]["content"]
    for path in [
        "/api/v1/hosts",
        "/api/v1/hosts/{agent_id}",
        "/api/v1/models/by-digest",
        "/api/v1/models/by-digest/{sha256}",
        "/api/v1/processes",
        "/api/v1/events",
        "/api/v1/agents",
        "/api/v1/search",
    ]:
        assert "get" in document["paths"][path], path
    schemas = document["components"]["schemas"]
    assert "host.name" in schemas["HostItem"]["properties"]
    assert schemas["HostPage"]["properties"]["next"]
