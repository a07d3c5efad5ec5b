"""Retention and schema upgrade on a filled store, SQLite and PostgreSQL.

For ROWS envelopes and ROWS events from 500 agents, two thirds of them expired: the upgrade
from revision 0001 (it builds the retention indexes), then retention in batches (total
rate, and the longest batch: how long ingest can be kept waiting), against the reference of
one DELETE of everything expired (the lock a naive job would hold).

Run: python -m bench.retention (about 2 minutes).
"""

from __future__ import annotations

import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic import command
from sqlalchemy import Engine, delete, text

from collector.retention import Retention, cutoffs
from collector.store import Store, migrate, schema
from collector.store.engine import create_store_engine

ROWS = 200_000
AGENTS = 500
NOW = datetime(2026, 12, 1, tzinfo=UTC)
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _fill(engine: Engine) -> None:
    """Revision 0001's tables, filled: a row every 40 s going back ROWS * 40 s (~93 days)."""
    with engine.begin() as conn:
        command.upgrade(migrate.alembic_config(conn), migrate.FIRST)
        conn.execute(
            schema.agents.insert(),
            [
                {
                    "agent_id": f"agent-{a:04d}",
                    "public_key": b"k" * 32,
                    "host_name": f"lap-{a}",
                    "os_type": "linux",
                    "group_name": "g",
                    "agent_version": "1",
                    "enrolled_at": NOW,
                    "last_seq": ROWS // AGENTS,
                    "last_digest": b"d",
                    "revoked": False,
                }
                for a in range(AGENTS)
            ],
        )
    for start in range(0, ROWS, 10_000):
        rows = [
            (f"agent-{n % AGENTS:04d}", n // AGENTS + 1, NOW - timedelta(seconds=40 * (ROWS - n)))
            for n in range(start, min(start + 10_000, ROWS))
        ]
        with engine.begin() as conn:
            conn.execute(
                schema.envelopes.insert(),
                [
                    {"agent_id": a, "seq": s, "digest": b"d" * 32, "envelope": b"e" * 600,
                     "received_at": at}
                    for a, s, at in rows
                ],
            )  # fmt: skip
            conn.execute(
                schema.events.insert(),
                [
                    {"agent_id": a, "seq": s, "dataset": "shadowai.model_file",
                     "action": "snapshot", "received_at": at, "body": "{}" * 200}
                    for a, s, at in rows
                ],
            )  # fmt: skip


@contextmanager
def _target(name: str, directory: Path) -> Iterator[tuple[str, str | None]]:
    if name == "sqlite":
        yield f"sqlite:///{directory / 'bench.db'}", None
        return
    schema_name = f"bench_{secrets.token_hex(4)}"
    try:
        yield POSTGRES, schema_name
    finally:
        engine = create_store_engine(POSTGRES, None)
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema_name}" CASCADE'))
        engine.dispose()


def _retention(store: Store, before: dict[str, datetime]) -> tuple[int, float, float]:
    """(rows deleted, seconds, longest batch in seconds)."""
    deleted, longest, started = 0, 0.0, time.perf_counter()
    for table, cutoff in before.items():
        while True:
            batch_started = time.perf_counter()
            count = store.delete_expired(table, before=cutoff, limit=5000)
            longest = max(longest, time.perf_counter() - batch_started)
            deleted += count
            if count < 5000:
                break
    return deleted, time.perf_counter() - started, longest


def _one_delete(engine: Engine, before: dict[str, datetime]) -> tuple[int, float]:
    started, deleted = time.perf_counter(), 0
    with engine.begin() as conn:
        for name, cutoff in before.items():
            table = schema.metadata.tables[name]
            deleted += conn.execute(delete(table).where(table.c.received_at < cutoff)).rowcount
    return deleted, time.perf_counter() - started


def run() -> Iterator[str]:
    before = cutoffs(Retention(envelopes_days=30, events_days=30), NOW)
    for name in ("sqlite", "postgresql"):
        for reference in (False, True):
            with (
                tempfile.TemporaryDirectory() as directory,
                _target(name, Path(directory)) as (
                    url,
                    schema_name,
                ),
            ):
                engine = create_store_engine(url, schema_name)
                _fill(engine)
                if reference:
                    deleted, seconds = _one_delete(engine, before)
                    yield (
                        f"retention {name} reference, one DELETE: {deleted} rows in "
                        f"{seconds:.2f} s, all of it under one write lock"
                    )
                    engine.dispose()
                    continue
                started = time.perf_counter()
                migrate.upgrade(engine, schema_name)
                yield (
                    f"upgrade {name} 0001 -> {migrate.head()} with {ROWS} envelopes and "
                    f"{ROWS} events: {time.perf_counter() - started:.2f} s"
                )
                engine.dispose()
                store = Store.open(url, schema=schema_name)
                deleted, seconds, longest = _retention(store, before)
                store.close()
                yield (
                    f"retention {name} batched: {deleted} rows in {seconds:.2f} s "
                    f"({deleted / seconds:,.0f} rows/s), longest batch {longest * 1000:.0f} ms"
                )


def main() -> int:
    for line in run():
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
