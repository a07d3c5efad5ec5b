"""Where one collector core's time goes: cProfile over the Publish path (no gRPC transport)
for a boot storm of simulated agents. `python -m bench.fleet_profile [--store postgresql]`."""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench.fleet import verify_rate
from bench.fleet_agent import SimAgent
from bench.fleet_fill import DirectContext
from collector.governance import load_rule_dir
from collector.ratelimit import Buckets
from collector.service import CollectorService
from collector.store import Store
from wire.envelope import raw_public_key
from wire.tokens import secret_digest
from wire.v1 import collector_pb2

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
RULES = Path(__file__).resolve().parent.parent / "rules"
# Which part of the path a function belongs to, by the file it is defined in.
AREAS = (
    ("verification", ("ed25519", "envelope.py")),
    ("flattening", ("wire/events.py", "json/")),
    ("protobuf", ("google/protobuf", "message.py")),
    ("rules", ("collector/governance", "sigma")),
    ("store: driver", ("sqlite3", "psycopg")),
    ("store: SQLAlchemy", ("sqlalchemy",)),
    ("store: ours", ("collector/store",)),
)


def _area(filename: str) -> str:
    for area, needles in AREAS:
        if any(n in filename for n in needles):
            return area
    return "other"


def _service(store: Store, agents: int) -> CollectorService:
    store.add_enrollment_token(
        token_id="p",
        secret_sha256=secret_digest(b"s"),
        group="g",
        created_at=datetime.now(UTC),
        expires_at=None,
    )
    store.limit_enrollment_token("p", max_uses=agents)
    rules = load_rule_dir(RULES)
    return CollectorService(
        store=store, rules=lambda: rules, enroll_limit=Buckets(per_second=1e6, burst=agents)
    )


def _boots(service: CollectorService, first: int, agents: int) -> tuple[list[SimAgent], list[Any]]:
    """Enroll `agents` simulated agents; their boot snapshots as Publish requests."""
    fleet = [SimAgent(i, random.Random(i)) for i in range(first, first + agents)]
    for agent in fleet:
        enroll = collector_pb2.EnrollRequest(
            token_id="p", token_secret=b"s", public_key=raw_public_key(agent.key.public_key())
        )
        service.Enroll(enroll, DirectContext())
        agent.append(agent.snapshot())
    requests = [
        collector_pb2.PublishRequest(envelopes=[p.envelope for p in a.pending]) for a in fleet
    ]
    return fleet, requests


def one_event_cost(service: CollectorService, agents: list[SimAgent], rounds: int = 4) -> float:
    """CPU seconds per Publish of one health event: the steady state of a fleet, where
    almost every call carries one envelope and its fixed cost is what counts."""
    requests = []
    for _ in range(rounds):
        for agent in agents:
            agent.pending.clear()
            agent.append([agent.health_event()])
            requests.append(collector_pb2.PublishRequest(envelopes=[agent.pending[0].envelope]))
    t0 = time.process_time()
    for request in requests:
        service.Publish(request, DirectContext())
    return (time.process_time() - t0) / len(requests)


def plain_rate(service: CollectorService, requests: list[Any]) -> float:
    """Events per CPU-second of this process, with no profiler in the way."""
    t0 = time.process_time()
    for request in requests:
        service.Publish(request, DirectContext())
    return sum(len(r.envelopes) for r in requests) / (time.process_time() - t0)


def profile(
    service: CollectorService, requests: list[Any], *, cpu: bool, verbose: bool = False
) -> tuple[int, float, Counter[str]]:
    # With cpu, the profiler's clock is this process's CPU time: waiting on PostgreSQL
    # counts nothing, as it costs the collector's core nothing.
    profiler = cProfile.Profile(time.process_time) if cpu else cProfile.Profile()
    t0 = time.process_time()
    profiler.enable()
    for request in requests:
        service.Publish(request, DirectContext())
    profiler.disable()
    cpu_seconds = time.process_time() - t0
    areas: Counter[str] = Counter()
    stats = pstats.Stats(profiler)
    for (filename, _, name), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        areas[_area(f"{filename} {name}")] += tottime
    if verbose:
        stats.sort_stats("tottime").print_stats(40)
        stats.sort_stats("cumulative").print_stats("/work/main/(collector|wire)", 40)
    return sum(len(r.envelopes) for r in requests), cpu_seconds, areas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--agents", type=int, default=60)
    parser.add_argument("--verbose", action="store_true", help="also the top functions")
    parser.add_argument("--cpu", action="store_true", help="profile CPU time, not wall time")
    args = parser.parse_args()
    schema = f"prof_{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory() as tmp:
        if args.store == "sqlite":
            store = Store.open(f"sqlite:///{tmp}/c.db")
        else:
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            store = Store.open("postgresql+psycopg://postgres@127.0.0.1:5432/test", schema=schema)
        try:
            service = _service(store, 2 * args.agents)
            fleet, boots = _boots(service, 0, args.agents)
            plain = plain_rate(service, boots)
            one = one_event_cost(service, fleet)
            _, later = _boots(service, args.agents, args.agents)
            events, cpu, areas = profile(service, later, cpu=args.cpu, verbose=args.verbose)
        finally:
            store.close()
            if args.store == "postgresql":
                with psycopg.connect(PG_URL, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    reference = verify_rate()
    print(f"{plain:,.0f} events per CPU-second unprofiled ({args.store}), boot snapshots")
    print(f"{one * 1e6:,.0f} µs of CPU per Publish of one health event, unprofiled")
    print(
        f"{reference:,.0f} raw Ed25519 verifications per second, one core: {plain / reference:.2f}"
    )
    total = sum(areas.values())
    print(f"{events} events, {events / cpu:,.0f} per CPU-second (profiled, {args.store})")
    for area, seconds in areas.most_common():
        print(f"  {area:<13} {seconds / total:6.1%}  {seconds / events * 1e6:7.1f} us/event")


if __name__ == "__main__":
    main()
