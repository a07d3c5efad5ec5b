"""Server time of every dashboard page and API listing over a store that simulated agents
filled through the real ingest path.

    python -m bench.fleet_pages --store sqlite|postgresql --agents 10000 [--keep NAME]

N agents of the fleet simulator enroll and publish their boot snapshots and a few steady
passes through CollectorService with the shipped rules (bench.fleet_fill, split over
processes); then the requests of bench.collector_scale are timed the same way, in a
process of their own. Prints the fill's events/s, the store's row counts, the table of
milliseconds and the serving process's peak RSS. PostgreSQL runs in a schema of its own,
dropped afterwards unless kept.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta

from sqlalchemy import func, select, text

from bench import fleet_fill
from bench.collector_scale import database, is_empty, time_pages
from collector.store import schema
from collector.store.engine import create_store_engine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_pages")
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=2, help="fill processes")
    parser.add_argument("--passes", type=int, default=3, help="steady passes after the boot")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--keep",
        metavar="NAME",
        help="fill once into a database kept under this name (a SQLite file in the temp "
        "directory, or a PostgreSQL schema) and reuse it on later runs",
    )
    parser.add_argument("--explain-over", type=float, default=300.0, metavar="MS")
    args = parser.parse_args(argv)
    print(
        f"# {args.store}: {args.agents:,} simulated agents, boot snapshot and {args.passes} "
        f"steady passes, {args.processes} fill processes",
        flush=True,
    )
    summary: dict[str, object] = {"store": args.store, "agents": args.agents}
    with database(args.store, keep=args.keep) as (url, schema_name):
        if is_empty(url, schema_name):
            tallies = fleet_fill.fill(
                url, schema_name, agents=args.agents, processes=args.processes, passes=args.passes
            )
            rates = fill_rates(tallies)
            summary["fill"] = rates
            print(describe_fill(rates), flush=True)
        analyze(url, schema_name)
        counts = row_counts(url, schema_name)
        summary["rows"] = counts
        print("rows: " + ", ".join(f"{name} {n:,}" for name, n in counts.items()), flush=True)
        extra = extra_requests(url, schema_name)
        time_pages(url, schema_name, args.repeat, args.explain_over, extra)
    print(json.dumps(summary, sort_keys=True))
    return 0


def fill_rates(tallies: list[fleet_fill.Tally]) -> dict[str, float]:
    """Events and events/s of the whole fill, of the boot snapshots and of the steady
    passes, over the span of every process together."""
    started = min(t.started for t in tallies)
    booted, done = max(t.booted for t in tallies), max(t.done for t in tallies)
    boot = sum(t.boot_events for t in tallies)
    steady = sum(t.steady_events for t in tallies)
    return {
        "events": boot + steady,
        "seconds": round(done - started, 1),
        "events_per_s": round((boot + steady) / (done - started)),
        "boot_events": boot,
        "boot_events_per_s": round(boot / (booted - started)),
        "steady_events": steady,
        "retries": sum(t.retries for t in tallies),
    }


def describe_fill(fill: dict[str, float]) -> str:
    took = timedelta(seconds=round(fill["seconds"]))
    return (
        f"filled in {took}: {fill['events']:,} events at {fill['events_per_s']:,} events/s "
        f"(boot snapshots {fill['boot_events']:,} at {fill['boot_events_per_s']:,}/s, steady "
        f"passes {fill['steady_events']:,}; {fill['retries']} publishes retried)"
    )


def analyze(url: str, schema_name: str | None) -> None:
    """PostgreSQL: what autovacuum does after a table grows by a tenth; until it has run
    on tables that grew within minutes, the planner guesses. The store's tables only: a
    bare ANALYZE takes every table of the database, other schemas' too, in one go."""
    engine = create_store_engine(url, schema_name)
    try:
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                tables = ", ".join(f'"{t.name}"' for t in schema.metadata.sorted_tables)
                conn.execute(text(f"ANALYZE {tables}"))
    finally:
        engine.dispose()


def extra_requests(url: str, schema_name: str | None) -> list[tuple[str, str]]:
    """The alert listings too (bench.collector_scale leaves them to bench.triage): here the
    alerts are the ones the shipped rules raised. And the page of the first host enrolled:
    bench.collector_scale's host is the one with the most models, whose alerts here are
    among the newest."""
    a, h = schema.alerts.c, schema.hosts.c
    engine = create_store_engine(url, schema_name)
    try:
        with engine.connect() as conn:
            busy = conn.execute(select(h.agent_id).order_by(h.model_count.desc()).limit(1))
            host = busy.scalar_one()
            first = conn.execute(select(h.agent_id).order_by(h.id).limit(1)).scalar_one()
            common = select(a.rule_id).group_by(a.rule_id).order_by(func.count().desc())
            rule = conn.execute(common.limit(1)).scalar_one()
            newest = conn.execute(select(func.max(a.id))).scalar_one()
    finally:
        engine.dispose()
    api = "/api/v1/alerts"
    return [
        ("api alerts", api),
        ("api alerts open by severity", f"{api}?status=open&sort=-level"),
        ("api alerts of a host", f"{api}?host={host}"),
        ("api alerts open of the top rule", f"{api}?rule={rule}&status=open"),
        ("api alerts csv 1000", f"{api}?format=csv&limit=1000"),
        ("page /alerts", "/alerts"),
        ("page /alerts open by severity", "/alerts?status=open&sort=-level"),
        ("page /alerts of a host", f"/alerts?host={host}"),
        ("page /alerts/{n}", f"/alerts/{newest}"),
        ("page /hosts/{id} first enrolled", f"/hosts/{first}"),
    ]


def row_counts(url: str, schema_name: str | None) -> dict[str, int]:
    m, d, a = schema.models.c, schema.model_digests.c, schema.alerts.c
    count = select(func.count())
    queries = {
        "hosts": count.select_from(schema.hosts),
        "model rows": count.select_from(schema.models),
        "live model rows": count.where(m.removed_at.is_(None)),
        "digests": count.where(d.file_count > 0),
        "processes": count.select_from(schema.processes),
        "events": count.select_from(schema.events),
        "alerts": count.select_from(schema.alerts),
        "open alerts": count.where(a.status == "open"),
    }
    engine = create_store_engine(url, schema_name)
    try:
        with engine.connect() as conn:
            return {name: int(conn.execute(query).scalar_one()) for name, query in queries.items()}
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
