"""Alert triage at fleet size: server time of one page of the alert listing, first and deep
(a keyset cursor half-way down), filtered, and the rules page's grouped counts, on SQLite
and PostgreSQL. The reference, measured in the same run, is the same deep page by OFFSET,
which is what the keyset cursor replaces.

Run: `python -m bench.triage [--alerts N] [--postgres URL]` (N=200000 by default: about two
minutes to fill both stores on a 2-core machine; 1000000 takes about ten).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from collector.governance.load import LEVELS
from collector.paging import Listing, decode_cursor, encode_cursor
from collector.store import Store
from collector.store import schema as tables
from collector.store.triage_values import AlertFilter, level_rank
from collector.web.app import create_app
from collector.web.auth import mint_api_token

POSTGRES = os.environ.get(
    "SHADOWAI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
HOSTS, RULES, ROUNDS, LIMIT = 10_000, 300, 7, 100
START = datetime(2026, 9, 1, tzinfo=UTC)
_STATUSES = ["open"] * 12 + ["acknowledged"] * 4 + ["resolved"] * 3 + ["suppressed"]


def rows(count: int) -> Iterator[dict[str, object]]:
    for i in range(count):
        level = LEVELS[i * 7 % len(LEVELS)]
        first = START + timedelta(seconds=i * 7 % (90 * 86400))
        status = _STATUSES[i % len(_STATUSES)]
        yield {
            "dedup_sha256": hashlib.sha256(b"%d" % i).digest(),
            "dedup_key": f"rule-{i % RULES}|agent-{i % HOSTS}|/models/{i}.gguf",
            "rule_id": f"rule-{i % RULES:04d}",
            "rule_title": f"Rule {i % RULES}",
            "level": level,
            "level_rank": level_rank(level),
            "status": status,
            "agent_id": f"{i % HOSTS:032x}",
            "host_name": f"laptop-{i % HOSTS:05d}",
            "summary": f"/home/dev/models/{i}.gguf (gguf, Llama-{i % 70}B, Q4_K_M)",
            "event_seq": i,
            "count": 1 + i % 13,
            "first_seen": first,
            "last_seen": first + timedelta(hours=i % 500),
            "status_by": "system",
            "status_at": first,
            "status_reason": "rule matched",
            "suppressed_until": START + timedelta(days=400) if status == "suppressed" else None,
            "assignee": f"analyst-{i // 10 % 20}" if i % 10 == 0 else None,
        }


def fill(store: Store, count: int) -> float:
    started = time.perf_counter()
    batch: list[dict[str, object]] = []
    with store._write() as conn:
        for row in rows(count):
            batch.append(row)
            if len(batch) == 5000:
                conn.execute(tables.alerts.insert(), batch)
                batch = []
        if batch:
            conn.execute(tables.alerts.insert(), batch)
    # The planner's statistics and (PostgreSQL) the visibility map that index-only scans
    # need, as autovacuum leaves a live table.
    engine = store._engine
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        sql = "ANALYZE" if engine.dialect.name == "sqlite" else "VACUUM ANALYZE alerts"
        conn.execute(text(sql))
    return time.perf_counter() - started


def timed(work: Callable[[], object]) -> float:
    """Median milliseconds of ROUNDS runs after one warm-up."""
    work()
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _middle_cursor(store: Store, count: int) -> str:
    alerts = tables.alerts
    with store._read() as conn:
        row = conn.execute(
            select(alerts.c.last_seen, alerts.c.id)
            .order_by(alerts.c.last_seen.desc(), alerts.c.id.desc())
            .offset(count // 2)
            .limit(1)
        ).one()
    return encode_cursor([row.last_seen.isoformat(), int(row.id)], sort="-last_seen")


def _offset_page(store: Store, count: int) -> None:
    alerts = tables.alerts
    with store._read() as conn:
        query = select(alerts).order_by(alerts.c.last_seen.desc(), alerts.c.id.desc())
        conn.execute(query.offset(count // 2).limit(LIMIT)).all()


def measure(store: Store, count: int, name: str) -> list[str]:
    newest = Listing(limit=LIMIT, sort="last_seen", descending=True)
    middle = decode_cursor(_middle_cursor(store, count), sort="-last_seen")
    deep = Listing(limit=LIMIT, after=middle, sort="last_seen", descending=True)
    severe = Listing(limit=LIMIT, sort="level", descending=True)
    rule_open = AlertFilter(rule="rule-0007", status="open")
    cases: list[tuple[str, Callable[[], object]]] = [
        ("first page", lambda: store.page_alerts(AlertFilter(), newest)),
        ("deep page (keyset)", lambda: store.page_alerts(AlertFilter(), deep)),
        ("deep page (OFFSET, reference)", lambda: _offset_page(store, count)),
        ("open, newest first", lambda: store.page_alerts(AlertFilter(status="open"), newest)),
        ("most severe first", lambda: store.page_alerts(AlertFilter(), severe)),
        ("one host", lambda: store.page_alerts(AlertFilter(host="laptop-00042"), newest)),
        ("one rule, open", lambda: store.page_alerts(rule_open, severe)),
        ("one assignee", lambda: store.page_alerts(AlertFilter(assignee="analyst-3"), newest)),
        ("rules page counts", store.rule_alert_counts),
    ]
    cases += _page_cases(store)
    results = {label: timed(work) for label, work in cases}
    lines = [f"triage {name} {count} alerts: {label} {ms:.1f} ms" for label, ms in results.items()]
    ratio = results["deep page (OFFSET, reference)"] / results["deep page (keyset)"]
    lines.append(f"triage {name}: keyset deep page {ratio:.1f}x faster than OFFSET")
    return lines


def _page_cases(store: Store) -> list[tuple[str, Callable[[], object]]]:
    """Whole requests through the app: query, template or JSON, headers."""
    rules = [{"id": f"rule-{i:04d}", "title": f"Rule {i}", "level": "high"} for i in range(RULES)]
    client = TestClient(create_app(store, rules_summary=lambda: rules))
    text_, token_id, digest = mint_api_token()
    store.add_api_token(token_id=token_id, secret_sha256=digest, role="viewer", created_at=START)
    headers = {"Authorization": f"Bearer {text_}"}

    def get(path: str, **kwargs: object) -> Callable[[], object]:
        def fetch() -> None:
            response = client.get(path, **kwargs)  # type: ignore[arg-type]
            assert response.status_code == 200, response.text

        return fetch

    return [
        ("page /alerts", get("/alerts")),
        ("page /alerts?status=open&sort=-level", get("/alerts?status=open&sort=-level")),
        ("page /rules", get("/rules")),
        ("GET /api/v1/alerts?limit=1000", get("/api/v1/alerts?limit=1000", headers=headers)),
    ]


def _count(store: Store) -> int:
    with store._read() as conn:
        return int(conn.execute(select(func.count()).select_from(tables.alerts)).scalar_one())


def run(count: int = 200_000, postgres: str | None = POSTGRES) -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{Path(tmp) / 'triage.db'}")
        try:
            yield f"triage sqlite: filled {count} alerts in {fill(store, count):.0f} s"
            assert _count(store) == count
            yield from measure(store, count, "sqlite")
        finally:
            store.close()
    if postgres is None:
        return
    schema = f"bench_{secrets.token_hex(6)}"
    store = Store.open(postgres, schema=schema)
    try:
        yield f"triage postgresql: filled {count} alerts in {fill(store, count):.0f} s"
        yield from measure(store, count, "postgresql")
    finally:
        with store._write() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.triage")
    parser.add_argument("--alerts", type=int, default=200_000)
    parser.add_argument("--postgres", default=POSTGRES, help="URL; 'none' to skip")
    args = parser.parse_args()
    for line in run(args.alerts, None if args.postgres == "none" else args.postgres):
        print(line, flush=True)


if __name__ == "__main__":
    main()
