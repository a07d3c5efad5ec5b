"""Opening the store: URLs it accepts, SQLite settings, reopening, threads."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collector.errors import CollectorError
from collector.store import AgentRecord, Store

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_unsupported_database_is_an_error() -> None:
    with pytest.raises(CollectorError, match="only sqlite:// and postgresql"):
        Store.open("mysql://root:hunter2@db/x")


def test_error_never_shows_the_password() -> None:
    with pytest.raises(CollectorError) as caught:
        Store.open("mysql://root:hunter2@db/x")
    assert "hunter2" not in str(caught.value)


def test_malformed_url_is_an_error() -> None:
    with pytest.raises(CollectorError, match="database URL"):
        Store.open("not a url")


def test_schema_is_for_postgresql_only(tmp_path: Path) -> None:
    with pytest.raises(CollectorError, match="schema is for PostgreSQL only"):
        Store.open(f"sqlite:///{tmp_path / 'x.db'}", schema="s1")


def test_schema_name_must_be_plain() -> None:
    with pytest.raises(CollectorError, match="not a plain lowercase name"):
        Store.open("postgresql+psycopg://postgres@127.0.0.1:5432/test", schema='x"; drop')


def test_sqlite_file_uses_write_ahead_logging(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    Store.open(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopening_keeps_the_data(open_store: Callable[[], Store]) -> None:
    first = open_store()
    first.add_agent(AgentRecord("a", b"k", "h", "linux", "g", "1", NOW))
    first.close()
    second = open_store()
    try:
        assert [a.record.agent_id for a in second.list_agents()] == ["a"]
    finally:
        second.close()


def test_in_memory_sqlite_is_one_database_across_threads() -> None:
    store = Store.open("sqlite://")
    try:
        store.add_agent(AgentRecord("a", b"k", "h", "linux", "g", "1", NOW))
        with ThreadPoolExecutor(max_workers=4) as pool:
            seen = list(pool.map(lambda _: len(store.list_agents()), range(8)))
        assert seen == [1] * 8
    finally:
        store.close()


def test_file_store_serves_many_threads(store: Store) -> None:
    store.add_agent(AgentRecord("a", b"k", "h", "linux", "g", "1", NOW))

    def work(i: int) -> int:
        store.add_api_token(
            token_id=f"t{i}", secret_sha256=b"x" * 32, role="viewer", created_at=NOW
        )
        return len(store.list_hosts())

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(work, range(12))) == [1] * 12
