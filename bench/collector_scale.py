"""Server time of every dashboard page and API listing on a fleet-sized store.

    python -m bench.collector_scale --store sqlite|postgresql \\
        --hosts 10000 --model-rows 1000000 --events 1000000

Seeds a store (bench.collector_seed), then a separate process (so that its peak RSS is the
collector's alone) serves the real app and times each request: first page, a deep page by
cursor, filtered, sorted, CSV. Prints a table of milliseconds, the query plans of whatever
took over 300 ms, the serving process's peak RSS, and the ingest rate into the full store
against an empty one. PostgreSQL runs in a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

from bench import collector_seed
from bench.collector_requests import ingest_rate, plan
from collector.paging import Listing
from collector.store import Store
from collector.store.engine import create_store_engine

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextmanager
def database(kind: str, *, keep: str | None) -> Iterator[tuple[str, str | None]]:
    """A fresh database URL (and PostgreSQL schema), removed afterwards unless kept."""
    if keep is not None:
        if kind == "sqlite":
            yield f"sqlite:///{Path(tempfile.gettempdir()) / f'{keep}.db'}", None
        else:
            yield PG_URL, keep
        return
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'collector.db'}", None
        return
    schema = f"bench_scale_{secrets.token_hex(4)}"
    try:
        yield PG_URL, schema
    finally:
        engine = create_engine(PG_URL)
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.collector_scale")
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--model-rows", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--keep",
        metavar="NAME",
        help="seed once into a database kept under this name (a SQLite file in the temp "
        "directory, or a PostgreSQL schema) and reuse it on later runs",
    )
    parser.add_argument("--explain-over", type=float, default=300.0, metavar="MS")
    args = parser.parse_args(argv)
    print(
        f"# {args.store}: {args.hosts:,} hosts, {args.model_rows:,} model-file rows, "
        f"{args.events:,} events",
        flush=True,
    )
    with database(args.store, keep=args.keep) as (url, schema):
        if is_empty(url, schema):
            started = time.perf_counter()
            _seed(url, schema, args)
            print(
                f"seeded in {timedelta(seconds=round(time.perf_counter() - started))}", flush=True
            )
        time_pages(url, schema, args.repeat, args.explain_over)
        full = ingest_rate(url, schema)
    with database(args.store, keep=None) as (url, schema):
        empty = ingest_rate(url, schema)
    print("\ningest through Store.ingest, 100 model_file events per batch, events/s:")
    for i, what in enumerate(["new files", "snapshots"]):
        print(
            f"  {what:10} {full[i]:>8,.0f} into the seeded store, {empty[i]:>8,.0f} into an "
            f"empty one (ratio {full[i] / empty[i]:.2f})"
        )
    return 0


def is_empty(url: str, schema: str | None) -> bool:
    store = Store.open(url, schema=schema)
    try:
        return not store.hosts_page(Listing(limit=1, sort="name")).items
    finally:
        store.close()


def _seed(url: str, schema: str | None, args: argparse.Namespace) -> None:
    store = Store.open(url, schema=schema)
    engine = create_store_engine(url, schema)
    try:
        collector_seed.seed(
            store, engine, hosts=args.hosts, model_rows=args.model_rows, events=args.events
        )
    finally:
        engine.dispose()
        store.close()


def time_pages(
    url: str,
    schema: str | None,
    repeat: int,
    explain_over: float,
    extra: Sequence[tuple[str, str]] = (),
) -> None:
    """Time the requests, and `extra` (name, path) after them, in a process of their own
    (bench.collector_requests)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    planned = json.dumps([*plan(url, schema), *extra])
    command = [sys.executable, "-m", "bench.collector_requests", url, json.dumps(schema)]
    command += [str(repeat), str(explain_over), planned]
    subprocess.run(command, check=True, env=env)


if __name__ == "__main__":
    sys.exit(main())
