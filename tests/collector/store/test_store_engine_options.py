"""PostgreSQL sessions of the store: no JIT, and a URL's own options still apply."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from collector.store.engine import create_store_engine
from tests.collector.conftest import POSTGRES_URL


@pytest.fixture
def schema() -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        yield name
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


@pytest.mark.parametrize("by", ["url", "argument"])
def test_sessions_run_without_jit_in_the_schema_asked_for(schema: str, by: str) -> None:
    if by == "url":
        engine = create_store_engine(f"{POSTGRES_URL}?options=-csearch_path%3D{schema}", None)
    else:
        engine = create_store_engine(POSTGRES_URL, schema)
    try:
        for _ in range(2):  # the pooled connection too
            with engine.connect() as conn:
                assert conn.execute(text("SHOW jit")).scalar_one() == "off"
                assert conn.execute(text("SELECT current_schema()")).scalar_one() == schema
    finally:
        engine.dispose()
