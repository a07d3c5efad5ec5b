"""On PostgreSQL an INSERT of many rows becomes one statement over arrays, or stays as it is."""

from __future__ import annotations

from sqlalchemy import func, insert
from sqlalchemy.dialects import postgresql

from collector.store import bulk, schema

PG = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]
KEYS = ("agent_id", "seq", "digest", "envelope", "received_at")


def test_a_plain_insert_of_many_rows_reads_one_binary_array_per_column() -> None:
    prepared = bulk._prepare(PG, insert(schema.envelopes), KEYS)
    assert prepared.columnar_sql is not None
    arrays = "unnest(%(agent_id)b::TEXT[], %(seq)b::BIGINT[], %(digest)b::BYTEA[]"
    assert arrays in prepared.columnar_sql
    assert "VALUES" not in prepared.columnar_sql
    assert "VALUES" in prepared.sql  # what one row takes


def test_an_insert_with_an_expression_keeps_its_row_at_a_time_form() -> None:
    statement = insert(schema.envelopes).values(received_at=func.now())
    prepared = bulk._prepare(PG, statement, KEYS[:4])
    assert prepared.columnar_sql is None
    assert "VALUES" in prepared.sql


def test_sqlite_keeps_executemany() -> None:
    from sqlalchemy.dialects import sqlite

    prepared = bulk._prepare(sqlite.dialect(), insert(schema.envelopes), KEYS)
    assert prepared.columnar_sql is None
