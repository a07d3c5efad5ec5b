"""The trigram index behind substring search: present on both stores, kept by ingest."""

from __future__ import annotations

from collector.paging import Listing
from collector.store import ModelFilter, Store, textsearch
from tests.collector.inventory_kit import Kit, build_fleet


def test_opening_a_store_builds_the_index_and_ingest_keeps_it(store: Store) -> None:
    kit: Kit = build_fleet(store)
    assert kit.live_files
    with store._read() as conn:  # the store's own connection, read-only here
        assert textsearch.has_index(conn)
        found = textsearch.candidates(conn, "Downloads/evil")
        assert found is not None and len(found) == 1
        assert textsearch.candidates(conn, "yolov8") is not None  # by model name too
        assert textsearch.candidates(conn, "ll") is None  # too short for trigrams
        assert textsearch.candidates(conn, "home/a", most=1) is None  # too common: scan


def test_a_removed_file_is_no_longer_found(store: Store) -> None:
    build_fleet(store)
    where = ModelFilter(q="Downloads/old")
    assert store.models_page(Listing(limit=10, sort="path"), where).items == []
    removed_too = ModelFilter(q="Downloads/old", include_removed=True)
    assert len(store.models_page(Listing(limit=10, sort="path"), removed_too).items) == 1


def test_scanning_and_the_index_find_the_same_files(store: Store) -> None:
    build_fleet(store)
    for q in ["llama", "LLAMA", "users/b", "bge", "<script>", "50%", "Q4_K", "onnx"]:
        listed = store.models_page(Listing(limit=100, sort="path"), ModelFilter(q=q)).items
        every = store.models_page(Listing(limit=100, sort="path")).items
        expected = [
            m["file.path"]
            for m in every
            if q.lower() in str(m["file.path"]).lower()
            or q.lower() in str(m["ai.model.name"] or "").lower()
        ]
        assert [m["file.path"] for m in listed] == expected, q
