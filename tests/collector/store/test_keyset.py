"""Keyset pages on a real database: every row once, in order, whichever direction."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, Text, create_engine, func, insert, select

from collector.paging import BadListing, Listing, decode_cursor, page_of
from collector.store import schema
from collector.store.keyset import cursor_values, keyset

_meta = MetaData()
_things = Table(
    "things", _meta, Column("id", Integer, primary_key=True), Column("name", Text, nullable=True)
)


def _pages(tmp_path: Path, *, descending: bool) -> list[list[int]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'k.db'}")
    _meta.create_all(engine)
    names = ["b", "a", None, "b", "c", "a", None, "c", "b"]
    with engine.begin() as conn:
        conn.execute(insert(_things), [{"id": i, "name": n} for i, n in enumerate(names)])
    key = [func.coalesce(_things.c.name, ""), _things.c.id]
    sort = "-name" if descending else "name"
    pages: list[list[int]] = []
    cursor: str | None = None
    with engine.connect() as conn:
        while True:
            after = None if cursor is None else decode_cursor(cursor, sort=sort)
            listing = Listing(limit=2, after=after, sort="name", descending=descending)
            query = keyset(select(_things.c.id, key[0].label("name")), key, listing)
            rows = [dict(r._mapping) for r in conn.execute(query)]
            page = page_of(rows, listing, key=("name", "id"))
            pages.append([int(str(r["id"])) for r in page.items])
            cursor = page.next
            if cursor is None:
                return pages


@pytest.mark.parametrize("descending", [False, True])
def test_pages_visit_every_row_once_in_sort_order(tmp_path: Path, descending: bool) -> None:
    pages = _pages(tmp_path, descending=descending)
    seen = [i for page in pages for i in page]
    expected = [2, 6, 1, 5, 0, 3, 8, 4, 7]
    assert seen == (list(reversed(expected)) if descending else expected)
    assert all(len(page) == 2 for page in pages[:-1])


def test_cursor_values_take_the_key_columns_types() -> None:
    hosts = schema.hosts.c
    key = [hosts.last_seen, hosts.host_name, hosts.id]
    when = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    assert cursor_values(key, [str(when), "h", 7]) == [when, "h", 7]
    for bad in (
        ["yesterday", "h", 7],
        ["2026-01-02T03:04:00", "h", 7],  # no zone
        [str(when), 5, 7],
        [str(when), "h", 2**63],
        [str(when), "h", True],
        [str(when), "h\x00", 7],
        [str(when), "h"],
    ):
        with pytest.raises(BadListing):
            cursor_values(key, bad)
