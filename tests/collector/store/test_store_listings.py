"""Keyset pages of every inventory listing: every row once, in order both ways, filtered."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from collector.paging import Listing, Page, decode_cursor
from collector.store import (
    AgentFilter,
    AgentRecord,
    DigestFilter,
    EventFilter,
    HostFilter,
    ModelFilter,
    ProcessFilter,
    Store,
    StoredEvent,
)
from collector.store.filters import (
    AGENT_SORTS,
    DIGEST_SORTS,
    EVENT_SORTS,
    HOST_SORTS,
    MODEL_SORTS,
    PROCESS_SORTS,
)
from tests.collector.inventory_kit import (
    D_EMBED,
    D_HOSTILE,
    D_LLAMA,
    D_PICKLE,
    D_VISION,
    HOSTS,
    T0,
    Kit,
    build_fleet,
)

Fetch = Callable[[Listing], Page]
Ident = Callable[[dict[str, object]], object]


@pytest.fixture
def kit(store: Store) -> Kit:
    return build_fleet(store)


def walk(fetch: Fetch, sort: str, *, descending: bool, limit: int) -> Iterator[dict[str, object]]:
    cursor = None
    while True:
        sort_text = ("-" if descending else "") + sort
        after = None if cursor is None else decode_cursor(cursor, sort=sort_text)
        page = fetch(Listing(limit=limit, after=after, sort=sort, descending=descending))
        assert len(page.items) <= limit
        yield from page.items
        if page.next is None:
            return
        assert len(page.items) == limit  # only a full page promises more
        cursor = page.next


def listings(store: Store) -> list[tuple[str, Fetch, tuple[str, ...], Ident]]:
    return [
        ("hosts", store.hosts_page, HOST_SORTS, lambda i: i["agent_id"]),
        ("models", store.models_page, MODEL_SORTS, lambda i: (i["agent_id"], i["file.path"])),
        ("digests", store.digests_page, DIGEST_SORTS, lambda i: i["sha256"]),
        (
            "processes",
            store.processes_page,
            PROCESS_SORTS,
            lambda i: (i["agent_id"], i["process.pid"]),
        ),
        ("events", store.events_page, EVENT_SORTS, lambda i: i["id"]),
        ("agents", store.agents_page, AGENT_SORTS, lambda i: i["agent_id"]),
    ]


def test_every_listing_walks_every_row_once_in_the_same_order_both_ways(
    store: Store, kit: Kit
) -> None:
    for name, fetch, sorts, ident in listings(store):
        everything = [ident(i) for i in fetch(Listing(limit=1000, sort=sorts[0])).items]
        assert len(everything) == len(set(everything)), name
        for sort in sorts:
            up = [ident(i) for i in walk(fetch, sort, descending=False, limit=2)]
            down = [ident(i) for i in walk(fetch, sort, descending=True, limit=3)]
            whole = [ident(i) for i in fetch(Listing(limit=1000, sort=sort)).items]
            assert up == whole, (name, sort)
            assert down == list(reversed(up)), (name, sort)
            assert sorted(map(repr, up)) == sorted(map(repr, everything)), (name, sort)


def test_sorts_order_by_what_they_name(store: Store, kit: Kit) -> None:
    sizes = [m["file.size"] or -1 for m in store.models_page(Listing(limit=100, sort="size")).items]
    assert sizes == sorted(sizes)
    hosts = store.digests_page(Listing(limit=100, sort="hosts", descending=True)).items
    assert hosts[0]["sha256"] == D_LLAMA and hosts[0]["hosts"] == 3
    names = [h["host.name"] for h in store.hosts_page(Listing(limit=100, sort="name")).items]
    assert names == ["alpha", "beta", "gamma", "quiet"]
    alerts = store.hosts_page(Listing(limit=100, sort="open_alerts", descending=True)).items
    assert [(h["host.name"], h["open_alerts"]) for h in alerts][:2] == [("alpha", 2), ("gamma", 1)]
    newest = store.events_page(Listing(limit=2, sort="id", descending=True)).items
    assert int(str(newest[0]["id"])) > int(str(newest[1]["id"]))


def test_the_listings_hold_what_was_ingested(store: Store, kit: Kit) -> None:
    files = store.models_page(Listing(limit=1000, sort="path")).items
    assert sorted((str(m["agent_id"]), str(m["file.path"])) for m in files) == sorted(
        kit.live_files
    )
    assert {m["host.name"] for m in files} == {"alpha", "beta", "gamma"}
    running = store.processes_page(Listing(limit=100, sort="pid")).items
    assert sorted((p["agent_id"], p["process.pid"]) for p in running) == sorted(kit.processes)
    hosts = {h["host.name"]: h for h in store.hosts_page(Listing(limit=100, sort="name")).items}
    assert [hosts[n]["model_count"] for n in ("alpha", "beta", "gamma", "quiet")] == [4, 4, 2, 0]


def test_digests_count_live_files_and_distinct_hosts(store: Store, kit: Kit) -> None:
    llama = store.digest(D_LLAMA)
    assert llama is not None
    # alpha's second copy was removed; beta holds two copies
    assert (llama["hosts"], llama["files"]) == (3, 4)
    assert (llama["name"], llama["format"], llama["kind"]) == (
        "Llama-3.1-8B-Instruct",
        "gguf",
        "llm",
    )
    assert (llama["license"], llama["parameters"], llama["size"]) == (
        "llama3.1",
        8_030_261_248,
        4_920_734_016,
    )
    embed = store.digest(D_EMBED)
    assert embed is not None and (embed["hosts"], embed["files"]) == (2, 2)
    assert store.digest("f" * 64) is None


def test_rebuilding_the_digests_gives_what_ingest_kept(store: Store, kit: Kit) -> None:
    def counts() -> list[tuple[object, ...]]:
        items = store.digests_page(Listing(limit=1000, sort="sha256")).items
        return [(d["sha256"], d["hosts"], d["files"], d["name"]) for d in items]

    def host_counts() -> list[object]:
        return [h["model_count"] for h in store.hosts_page(Listing(limit=100, sort="name")).items]

    kept, kept_hosts = counts(), host_counts()
    store.rebuild_digests()
    assert counts() == kept and host_counts() == kept_hosts


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (ModelFilter(format="pickle"), {"/home/a/Downloads/evil.pkl"}),
        (ModelFilter(risk="suspicious"), {"/Users/b/models/yolov8n.onnx"}),
        (
            ModelFilter(kind="embedding", origin="package"),
            {"/home/a/venv/site-packages/bge/model.safetensors"},
        ),
        (
            ModelFilter(sha256=D_EMBED.upper()),
            {"/home/a/venv/site-packages/bge/model.safetensors", "/Users/b/bge/model.safetensors"},
        ),
        (
            ModelFilter(agent_id="agent-gamma"),
            {"C:\\Users\\g\\models\\llama.gguf", "/home/dev/<script>alert(1)</script>.gguf"},
        ),
        (
            ModelFilter(host="beta", q="LLAMA"),
            {"/Users/b/.ollama/models/blobs/llama", "/Users/b/projects/llama-copy.gguf"},
        ),
        (ModelFilter(q="50%_off"), set()),  # % and _ are literal
        (
            ModelFilter(agent_id="agent-alpha", include_removed=True, format="gguf"),
            {"/home/a/.cache/huggingface/llama.gguf", "/home/a/Downloads/old.gguf"},
        ),
    ],
)
def test_model_file_filters(store: Store, kit: Kit, where: ModelFilter, expected: set[str]) -> None:
    items = store.models_page(Listing(limit=100, sort="path"), where).items
    assert {str(m["file.path"]) for m in items} == expected


def test_other_filters(store: Store, kit: Kit) -> None:
    def hosts(where: HostFilter) -> set[object]:
        return {
            h["host.name"] for h in store.hosts_page(Listing(limit=100, sort="name"), where).items
        }

    assert hosts(HostFilter(group="eng")) == {"beta", "gamma"}
    assert hosts(HostFilter(os="linux", q="AL")) == {"alpha"}
    digests = store.digests_page(
        Listing(limit=100, sort="name"), DigestFilter(risk="dangerous")
    ).items
    assert [d["sha256"] for d in digests] == [D_PICKLE]
    by_prefix = store.digests_page(
        Listing(limit=100, sort="name"), DigestFilter(q=D_LLAMA[:8].upper())
    ).items
    assert [d["sha256"] for d in by_prefix] == [D_LLAMA]
    stopped = store.processes_page(
        Listing(limit=100, sort="pid"), ProcessFilter(include_stopped=True, runtime="vllm")
    ).items
    assert [(p["process.pid"], p["stopped_at"] is not None) for p in stopped] == [(78, True)]
    assert (
        store.processes_page(Listing(limit=100, sort="pid"), ProcessFilter(runtime="vllm")).items
        == []
    )
    health = store.events_page(
        Listing(limit=100, sort="id"),
        EventFilter(dataset="shadowai.agent_health", agent_id="agent-alpha"),
    ).items
    assert [e["event"]["agent.health.cpu_percent"] for e in health] == [1.5, 3.5]  # type: ignore[index]
    agents = store.agents_page(Listing(limit=100, sort="name"), AgentFilter(group="ml")).items
    assert [a["host.name"] for a in agents] == ["alpha", "quiet"]


def test_a_host_has_its_enrollment_counts_and_latest_health(store: Store, kit: Kit) -> None:
    host = store.host("agent-alpha")
    assert host is not None
    assert (host["model_count"], host["open_alerts"], host["process_count"]) == (4, 2, 2)
    assert host["enrollment"]["host.group"] == "ml"  # type: ignore[index]
    assert host["health"]["agent.health.cpu_percent"] == 3.5  # type: ignore[index]
    quiet = store.host(HOSTS["quiet"][0])
    assert quiet is not None and quiet["health"] is None and quiet["last_seen"] is None
    assert store.host("nobody") is None
    assert {a["rule_id"] for a in store.host_alerts("agent-alpha")} == {"r-exposed", "r-pickle"}


def test_overview_figures(store: Store, kit: Kit) -> None:
    figures = store.overview(kit.now)
    assert figures["hosts"] == {"total": 4, "online": 0, "silent": 4}
    soon = store.overview(T0 + timedelta(hours=2, minutes=5))
    assert soon["hosts"]["online"] == 1  # alpha reported last, an hour after the others
    assert figures["models"] == 10 and figures["digests"] == 5 and figures["open_alerts"] == 3
    kinds = {k["label"]: k["files"] for k in figures["by_kind"]}
    assert kinds == {"llm": 4, "embedding": 2, "other": 1, "vision": 1, "unknown": 1}
    assert (
        sum(int(str(s["files"])) for s in figures["by_size"]) == 9
    )  # the unhashed file has no digest
    assert len(figures["alerts_per_day"]) == 30
    assert sum(int(str(d["alerts"])) for d in figures["alerts_per_day"]) == 3
    assert figures["top_models"][0]["sha256"] == D_LLAMA


def test_overview_charts_count_digests_and_files_most_files_first(store: Store, kit: Kit) -> None:
    figures = store.overview(kit.now)

    def bars(name: str) -> list[tuple[object, ...]]:
        return [tuple(bar.values()) for bar in figures[name]]

    assert bars("by_format") == [
        ("gguf", 2, 5),
        ("safetensors", 1, 2),
        ("onnx", 1, 1),
        ("pickle", 1, 1),
    ]
    # Ties in files by the value itself, so the unknown kind ('') comes first of them.
    assert [label for label, _, _ in bars("by_kind")] == [
        "llm",
        "embedding",
        "unknown",
        "other",
        "vision",
    ]
    assert bars("by_size") == [
        ("< 100 MB", 3),
        ("100 MB - 1 GB", 2),
        ("1 - 4 GB", 0),
        ("4 - 16 GB", 4),
        ("16 - 64 GB", 0),
        (">= 64 GB", 0),
    ]


def test_overview_shows_files_of_unknown_size_and_the_largest_bucket(store: Store) -> None:
    store.add_agent(AgentRecord("agent-1", bytes(32), "solo", "linux", "ml", "0.4.2", T0))
    files = [("/m/unsized.bin", "1" * 64, None), ("/m/huge.gguf", "2" * 64, 70 * 10**9)]
    events = []
    for seq, (path, digest, size) in enumerate(files, start=1):
        body: dict[str, object] = {
            "event.dataset": "shadowai.model_file",
            "event.action": "discovered",
            "host.name": "solo",
            "agent.id": "agent-1",
            "file.path": path,
            "file.hash.sha256": digest,
        }
        if size is not None:
            body["file.size"] = size
        events.append(StoredEvent(seq, b"d", b"e", T0, body))
    store.ingest(
        agent_id="agent-1",
        expected_last_seq=0,
        last_seq=2,
        last_digest=b"d",
        events=events,
        gaps=[],
        alerts=[],
        now=T0,
    )
    sizes = [(bar["label"], bar["files"]) for bar in store.overview(T0)["by_size"]]
    assert sizes == [
        ("unknown", 1),
        ("< 100 MB", 0),
        ("100 MB - 1 GB", 0),
        ("1 - 4 GB", 0),
        ("4 - 16 GB", 0),
        ("16 - 64 GB", 0),
        (">= 64 GB", 1),
    ]


def test_top_models_are_by_host_count_with_ties_by_digest_descending(
    store: Store, kit: Kit
) -> None:
    top = store.overview(kit.now)["top_models"]
    assert [(m["hosts"], m["sha256"]) for m in top] == [
        (3, D_LLAMA),
        (2, D_EMBED),
        (1, D_HOSTILE),
        (1, D_VISION),
        (1, D_PICKLE),
    ]


def test_search_finds_each_kind(store: Store, kit: Kit) -> None:
    def hits(q: str, kind: str) -> list[object]:
        return [h["label"] for h in store.search(q, kind, Listing(limit=100, sort="label")).items]

    assert hits("ALP", "host") == ["alpha"]
    assert hits("llama", "model") == ["Llama-3.1-8B-Instruct"]
    assert hits(D_PICKLE[:6], "digest") == [D_PICKLE]
    assert hits("zz", "digest") == []  # not hex: no lookup
    assert hits("Downloads/evil", "path") == ["/home/a/Downloads/evil.pkl"]
    assert hits("old.gguf", "path") == []  # removed
