"""How ingest grows with collector processes: `python -m bench.fleet_scaling [--processes 1 2 4]`.

For each K, K `serve` processes share one port (SO_REUSEPORT) and one fresh PostgreSQL
schema. Simulated agents enroll and seal their boot snapshots before the clock starts, so
that while it runs the simulator only sends: the cores are left to the collector and
PostgreSQL. Then every agent pushes its backlog over its own mTLS channel. Printed per K:
events/s, CPU of the collector processes and of PostgreSQL (from /proc), and the raw
Ed25519 rate of one core measured in the same run, before each K.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psycopg

from agent.pinning import fetch_pinned_ca
from bench.fleet import enroll_request, verify_rate
from bench.fleet_agent import SimAgent
from bench.fleet_local import PG_URL, _collector, _cpu_seconds, _serve
from bench.fleet_store import check_store
from wire import tokens
from wire.v1 import collector_pb2, collector_pb2_grpc


@dataclass
class Pushed:
    events: int = 0
    rpcs: int = 0
    retries: int = 0
    first: float = 0.0
    last: float = 0.0


def postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL server process so far (the backends come and go
    with connections, so compare totals taken while the collectors hold theirs)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if "(postgres)" in text:
            total += _cpu_seconds(int(stat.parent.name))
    return total


async def _enroll(
    agent: SimAgent, stub: collector_pb2_grpc.CollectorStub, token: str, ca_pem: bytes
) -> tuple[str, grpc.ChannelCredentials]:
    request, key_pem = enroll_request(agent, tokens.parse(token), "fleet-scaling")
    reply = await stub.Enroll(request, timeout=60)
    agent.start_at(reply.last_seq, bytes(reply.last_digest))
    creds = grpc.ssl_channel_credentials(ca_pem, key_pem, reply.client_cert_pem)
    return f"127.0.0.1:{reply.mtls_port}", creds


async def _push(
    agent: SimAgent, address: str, creds: Any, batch: int, out: Pushed, go: asyncio.Event
) -> None:
    async with grpc.aio.secure_channel(address, creds) as channel:
        stub = collector_pb2_grpc.CollectorStub(channel)
        await channel.channel_ready()
        await go.wait()
        while agent.pending:
            chunk = agent.pending[:batch]
            request = collector_pb2.PublishRequest(envelopes=[p.envelope for p in chunk])
            try:
                reply = await stub.Publish(request, timeout=120)
            except grpc.aio.AioRpcError:
                out.retries += 1
                await asyncio.sleep(0.2)
                continue
            agent.settle(len(chunk))
            out.events += reply.accepted + reply.duplicates
            out.rpcs += 1
            out.last = time.monotonic()


async def _run(
    port: int, token: str, agents: list[SimAgent], batch: int, started: Callable[[], None]
) -> Pushed:
    """Enroll, seal every boot snapshot, connect; then call `started` and push it all."""
    ca_pem = fetch_pinned_ca("127.0.0.1", port, tokens.parse(token).ca_fingerprint)
    async with grpc.aio.secure_channel(
        f"127.0.0.1:{port}", grpc.ssl_channel_credentials(ca_pem)
    ) as enroll:
        stub = collector_pb2_grpc.CollectorStub(enroll)
        enrolled = [await _enroll(a, stub, token, ca_pem) for a in agents]
    for agent in agents:  # sealed now, before the clock starts
        agent.append(agent.snapshot())
    out, go = Pushed(), asyncio.Event()
    pushes = [
        asyncio.create_task(_push(a, addr, creds, batch, out, go))
        for a, (addr, creds) in zip(agents, enrolled, strict=True)
    ]
    await asyncio.sleep(1.0)  # every channel connected and waiting
    started()
    out.first = time.monotonic()
    go.set()
    await asyncio.gather(*pushes)
    return out


def one(processes: int, agents: int, batch: int, seed: int, port: int) -> dict[str, Any]:
    schema = f"scale_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    database = f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data_dir = Path(tmp)
            create = _collector(data_dir, database, "tokens", "create", "--uses", str(agents))
            token = subprocess.run(create, check=True, capture_output=True, text=True)
            procs = [_serve(data_dir, database, port, i) for i in range(processes)]
            try:
                return _measure(procs, token.stdout.strip(), agents, batch, seed, port, database)
            finally:
                for proc in procs:
                    proc.terminate()
                    proc.wait(30)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _measure(
    procs: list[subprocess.Popen[str]],
    token: str,
    agents: int,
    batch: int,
    seed: int,
    port: int,
    database: str,
) -> dict[str, Any]:
    reference = verify_rate(5000)
    rng = random.Random(seed)
    fleet = [SimAgent(i, random.Random(rng.random())) for i in range(agents)]
    baseline: list[tuple[float, float, float]] = []  # the CPU counters when sending starts
    pushed = asyncio.run(_run(port, token, fleet, batch, lambda: baseline.append(_cpus(procs))))
    cpu_end = _cpus(procs)
    collector0, postgres0, sim0 = baseline[0]
    seconds = pushed.last - pushed.first
    collector_cpu = cpu_end[0] - collector0
    check = check_store(
        database.replace("+psycopg", ""),
        {a.agent_id: 1 for a in fleet},
        {a.agent_id: a.seq for a in fleet},
    )
    return {
        "processes": len(procs),
        "agents": agents,
        "events": pushed.events,
        "rpcs": pushed.rpcs,
        "retries": pushed.retries,
        "seconds": round(seconds, 2),
        "events_per_s": round(pushed.events / seconds),
        "collector_cpu_s": round(collector_cpu, 2),
        "events_per_collector_cpu_s": round(pushed.events / collector_cpu),
        "postgres_cpu_s": round(cpu_end[1] - postgres0, 2),
        "simulator_cpu_s": round(cpu_end[2] - sim0, 2),
        "verify_per_s_one_core": round(reference),
        "ratio_per_collector_cpu": round(pushed.events / collector_cpu / reference, 3),
        **check,
    }


def _cpus(procs: list[subprocess.Popen[str]]) -> tuple[float, float, float]:
    collector = sum(_cpu_seconds(p.pid) for p in procs)
    return collector, postgres_cpu(), time.process_time()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_scaling", description=__doc__)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--port", type=int, default=49311)
    args = parser.parse_args(argv)
    results = []
    for k in args.processes:
        result = one(k, args.agents, args.batch, args.seed, args.port)
        print(json.dumps(result, sort_keys=True), flush=True)
        results.append(result)
    base = results[0]["events_per_s"]
    for result in results:
        print(
            f"{result['processes']} process(es): {result['events_per_s']:>6} events/s "
            f"({result['events_per_s'] / base:.2f}x), {result['events_per_collector_cpu_s']}"
            f" per collector CPU-s, ratio {result['ratio_per_collector_cpu']}"
        )
    return 0 if all(r["lost"] == 0 and r["duplicates"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
