"""A database from before the inventory columns gets them, and the same listings, back."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, update

from collector.paging import Listing
from collector.store import ModelFilter, ProcessFilter, Store, schema, textsearch
from tests.collector.inventory_kit import build_fleet


def _everything(store: Store) -> list[object]:
    return [
        store.models_page(Listing(limit=100, sort="size", descending=True)).items,
        store.models_page(Listing(limit=100, sort="path"), ModelFilter(q="llama")).items,
        store.digests_page(Listing(limit=100, sort="hosts")).items,
        store.hosts_page(Listing(limit=100, sort="models")).items,
        store.processes_page(
            Listing(limit=100, sort="gpu_memory"), ProcessFilter(runtime="ollama")
        ).items,
        store.overview(datetime(2026, 11, 21, tzinfo=UTC)),
    ]


def test_filling_an_old_database_gives_the_listings_ingest_would_have(store: Store) -> None:
    build_fleet(store)
    before = _everything(store)
    with store._write() as conn:  # make it look like a database from before the columns
        blank = {c: "" for c in ("path_key", "sha256", "name", "format", "kind", "risk", "origin")}
        conn.execute(update(schema.models).values(size=-1, parameters=-1, **blank))
        conn.execute(
            update(schema.processes).values(runtime="", gpu_memory=-1, gpu_utilization=-1.0)
        )
        conn.execute(update(schema.hosts).values(model_count=0))
        conn.execute(delete(schema.model_digests))
        textsearch.drop(conn)
    assert _everything(store) != before
    store.fill_inventory()
    assert _everything(store) == before
    store.fill_inventory()  # again: nothing changes
    assert _everything(store) == before
