"""What each query of the overview page costs, on a store already filled.

    python -m bench.overview_parts URL [--schema NAME] [--repeat 5] [--explain]

Runs collector.store.overview.overview `repeat` times and times every statement it sends
(SQLAlchemy's cursor events): prints, per statement, the first and the median milliseconds
and its opening words; with --explain, the plan of each (EXPLAIN ANALYZE on PostgreSQL,
EXPLAIN QUERY PLAN on SQLite).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine

from collector.store import overview
from collector.store.engine import create_store_engine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overview_parts")
    parser.add_argument("url")
    parser.add_argument("--schema")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args(argv)
    engine = create_store_engine(args.url, args.schema)
    try:
        statements, wholes = timed(engine, args.repeat)
        print(f"{'first ms':>9} {'median ms':>9}  statement")
        for sql, (times, _) in statements.items():
            print(f"{times[0]:9.1f} {statistics.median(times):9.1f}  {summary(sql)}")
        print(f"{wholes[0]:9.1f} {statistics.median(wholes):9.1f}  the whole overview")
        if args.explain:
            for sql, (_, params) in statements.items():
                print(f"\n{sql}\n{params}")
                print(explain(engine, sql, params))
    finally:
        engine.dispose()
    return 0


Timings = dict[str, tuple[list[float], Any]]


def timed(engine: Engine, repeat: int) -> tuple[Timings, list[float]]:
    """Each statement's milliseconds over `repeat` runs of the overview, and the whole's."""
    statements: Timings = {}
    started: dict[int, float] = defaultdict(float)

    def before(conn: Any, cursor: Any, sql: str, params: Any, *_: Any) -> None:
        started[id(cursor)] = time.perf_counter()

    def after(conn: Any, cursor: Any, sql: str, params: Any, *_: Any) -> None:
        took = (time.perf_counter() - started.pop(id(cursor))) * 1000
        statements.setdefault(sql, ([], params))[0].append(took)

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    wholes = []
    now = datetime.now(UTC)
    for _ in range(repeat):
        with engine.connect() as conn:
            begun = time.perf_counter()
            overview.overview(conn, now)
            wholes.append((time.perf_counter() - begun) * 1000)
    event.remove(engine, "before_cursor_execute", before)
    event.remove(engine, "after_cursor_execute", after)
    return statements, wholes


def summary(sql: str) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= 110 else flat[:107] + "..."


def explain(engine: Engine, sql: str, params: Any) -> str:
    with engine.connect() as conn:
        return "\n".join(_plan(conn, sql, params))


def _plan(conn: Connection, sql: str, params: Any) -> list[str]:
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        if conn.dialect.name == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            return [str(row[-1]) for row in cursor.fetchall()]
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        return [str(row[0]) for row in cursor.fetchall()]
    finally:
        cursor.close()
        conn.execute(text("SELECT 1"))


if __name__ == "__main__":
    sys.exit(main())
