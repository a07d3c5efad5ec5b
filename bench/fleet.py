"""Fleet simulator: N enrolled agent identities over real gRPC with mTLS to a real collector.

`python -m bench.fleet --collector HOST:PORT --token TOKEN --agents N --duration SECONDS`
(a token from `shadowai-collector tokens create --uses N`; start the collector with an
`--enroll-rate` that lets N enrollments from one address through). The last line printed
is one JSON object; `--database URL` checks lost and duplicated events against the store.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from agent.config import Settings
from agent.pinning import fetch_pinned_ca
from bench.fleet_agent import BAD_CODES, SimAgent
from bench.fleet_store import check_store
from wire import RETRY_PUSHBACK_METADATA, envelope, tokens
from wire.envelope import raw_public_key
from wire.v1 import collector_pb2, collector_pb2_grpc

DEFAULTS = Settings()


@dataclass(frozen=True)
class Knobs:
    collector: str
    token: str
    ca_pem: bytes
    agents: int
    duration: float
    speedup: float = 1.0
    boot_storm: float = 0.0  # every agent boots within this many seconds (0: spread)
    outage_at: float = -1.0  # seconds after start when agents lose the network
    outage_for: float = 0.0
    bad_share: float = 0.0  # bad envelopes per good envelope sent
    batch: int = 500
    drain_timeout: float = 120.0
    seed: int = 1
    first_index: int = 0


@dataclass
class Tally:
    sent: int = 0
    acked: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    good_refused: int = 0
    bad_sent: int = 0
    bad_wrong: list[str] = field(default_factory=list)
    replays: int = 0
    replays_not_duplicate: int = 0
    failures: int = 0
    enroll_failures: int = 0
    latencies: list[float] = field(default_factory=list)
    acked_upto: dict[str, int] = field(default_factory=dict)  # agent_id: last acked seq
    first_seq: dict[str, int] = field(default_factory=dict)
    pending: int = 0
    first_send: float = float("inf")  # time.time(), comparable across processes
    last_ack: float = 0.0


def _pushback(exc: grpc.aio.AioRpcError, attempt: int) -> float:
    """The collector's retry hint when it gave one, else jittered exponential backoff."""
    for key, value in exc.trailing_metadata() or ():
        if key == RETRY_PUSHBACK_METADATA and str(value).isdigit():
            return min(60.0, int(value) / 1000)
    backoff: float = min(5.0, 0.2 * 2**attempt) * (0.5 + random.random())
    return backoff


def _csr(agent_id: str) -> tuple[bytes, bytes]:
    tls_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, agent_id)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(tls_key, hashes.SHA256())
    key_pem = tls_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return csr.public_bytes(serialization.Encoding.PEM), key_pem


class Driver:
    """Runs one process's share of the fleet on one event loop."""

    def __init__(self, knobs: Knobs) -> None:
        self.k = knobs
        self.t = Tally()
        self.start = 0.0
        self.token = tokens.parse(knobs.token)
        self.host = knobs.collector.rsplit(":", 1)[0]
        self.credit: dict[str, float] = {}  # bad envelopes owed, per agent (--bad-share)

    async def run(self) -> Tally:
        self.start = time.monotonic()
        enroll = grpc.aio.secure_channel(
            self.k.collector, grpc.ssl_channel_credentials(self.k.ca_pem)
        )
        stub = collector_pb2_grpc.CollectorStub(enroll)
        rng = random.Random(self.k.seed)
        agents = [
            SimAgent(self.k.first_index + i, random.Random(rng.random()))
            for i in range(self.k.agents)
        ]
        await asyncio.gather(*(self._life(a, stub) for a in agents))
        await enroll.close()
        return self.t

    def _now(self) -> float:
        return time.monotonic() - self.start

    def _boot_delay(self, agent: SimAgent) -> float:
        window = self.k.boot_storm or DEFAULTS.interval / self.k.speedup
        return agent.rng.uniform(0, min(window, self.k.duration / 2))

    async def _enroll(
        self, agent: SimAgent, stub: collector_pb2_grpc.CollectorStub
    ) -> tuple[str, grpc.ChannelCredentials] | None:
        csr, key_pem = _csr(agent.agent_id)
        request = collector_pb2.EnrollRequest(
            token_id=self.token.token_id,
            token_secret=self.token.secret.encode(),
            public_key=raw_public_key(agent.key.public_key()),
            host_name=agent.host_name,
            host_os_type="linux",
            agent_version="fleet-sim",
            csr_pem=csr,
        )
        for attempt in range(12):
            try:
                reply = await stub.Enroll(request, timeout=30)
                break
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in (
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    grpc.StatusCode.UNAVAILABLE,
                ):
                    raise
                await asyncio.sleep(_pushback(exc, attempt))
        else:
            self.t.enroll_failures += 1
            return None
        agent.start_at(reply.last_seq, bytes(reply.last_digest))
        self.t.first_seq[agent.agent_id] = reply.last_seq + 1
        self.t.acked_upto[agent.agent_id] = reply.last_seq
        creds = grpc.ssl_channel_credentials(self.k.ca_pem, key_pem, reply.client_cert_pem)
        return f"{self.host}:{reply.mtls_port}", creds

    async def _life(self, agent: SimAgent, enroll: collector_pb2_grpc.CollectorStub) -> None:
        await asyncio.sleep(self._boot_delay(agent))
        enrolled = await self._enroll(agent, enroll)
        if enrolled is None:
            return
        channel = grpc.aio.secure_channel(*enrolled)
        stub = collector_pb2_grpc.CollectorStub(channel)
        agent.append(agent.snapshot())
        next_scan = self._now() + DEFAULTS.interval / self.k.speedup
        next_proc = self._now() + DEFAULTS.process_interval / self.k.speedup
        while self._now() < self.k.duration:
            if self.k.outage_at <= self._now() < self.k.outage_at + self.k.outage_for:
                await asyncio.sleep(self.k.outage_at + self.k.outage_for - self._now())
                await channel.close()  # reconnect: a new connection, as after a lost network
                channel = grpc.aio.secure_channel(*enrolled)
                stub = collector_pb2_grpc.CollectorStub(channel)
            await self._ship(agent, stub, self._now() + 30)
            await self._misbehave(agent, stub)
            await asyncio.sleep(max(0.0, min(next_scan, next_proc, self.k.duration) - self._now()))
            if self._now() >= next_scan:
                agent.append(agent.scan_pass())
                next_scan += DEFAULTS.interval / self.k.speedup
            if self._now() >= next_proc:
                agent.append(agent.process_pass())
                next_proc += DEFAULTS.process_interval / self.k.speedup
        await self._ship(agent, stub, self._now() + self.k.drain_timeout)
        self.t.pending += len(agent.pending)
        await channel.close()

    async def _ship(
        self, agent: SimAgent, stub: collector_pb2_grpc.CollectorStub, until: float
    ) -> None:
        """Send pending envelopes in batches until all are acknowledged or `until` passes."""
        attempt = 0
        while agent.pending and self._now() < until:
            batch = agent.pending[: self.k.batch]
            request = collector_pb2.PublishRequest(envelopes=[p.envelope for p in batch])
            self.t.sent += len(batch)
            self.t.first_send = min(self.t.first_send, time.time())
            try:
                reply = await stub.Publish(request, timeout=30)
            except grpc.aio.AioRpcError as exc:
                self.t.failures += 1
                await asyncio.sleep(_pushback(exc, attempt))
                attempt += 1
                continue
            attempt = 0
            now = time.monotonic()
            self.t.last_ack = time.time()
            for rejection in reply.rejections:
                self.t.refused[rejection.code] += 1
            self.t.good_refused += len(reply.rejections)
            done = agent.settle(len(batch))
            self.t.acked += len(done) - len(reply.rejections)
            self.t.latencies.extend(now - p.created for p in done)
            self.t.acked_upto[agent.agent_id] = done[-1].seq
            owed = self.credit.get(agent.agent_id, 0.0) + self.k.bad_share * len(done)
            self.credit[agent.agent_id] = owed

    async def _misbehave(self, agent: SimAgent, stub: collector_pb2_grpc.CollectorStub) -> None:
        """The bad envelopes owed (each checked for the right refusal) and exact replays."""
        while agent.acked and self.credit.get(agent.agent_id, 0.0) >= 1.0:
            self.credit[agent.agent_id] -= 1.0
            await self._one_bad(agent, stub)

    async def _one_bad(self, agent: SimAgent, stub: collector_pb2_grpc.CollectorStub) -> None:
        kind = agent.rng.choice([*BAD_CODES, "resent"])
        bad = agent.exact_replay() if kind == "resent" else agent.bad_envelope(kind)
        assert bad is not None
        try:
            reply = await stub.Publish(collector_pb2.PublishRequest(envelopes=[bad]), timeout=30)
        except grpc.aio.AioRpcError:
            self.t.failures += 1
            return
        if kind == "resent":
            self.t.replays += 1
            self.t.replays_not_duplicate += int(reply.duplicates != 1 or bool(reply.rejections))
            return
        self.t.bad_sent += 1
        codes = [r.code for r in reply.rejections]
        for code in codes:
            self.t.refused[code] += 1
        if codes != [BAD_CODES[kind]]:
            self.t.bad_wrong.append(f"{kind}: {codes}")


def _worker(knobs: Knobs) -> Tally:
    return asyncio.run(Driver(knobs).run())


def _merge(parts: list[Tally]) -> Tally:
    total = Tally()
    for part in parts:
        for name in ("sent", "acked", "good_refused", "bad_sent", "replays", "failures"):
            setattr(total, name, getattr(total, name) + getattr(part, name))
        total.replays_not_duplicate += part.replays_not_duplicate
        total.enroll_failures += part.enroll_failures
        total.pending += part.pending
        total.first_send = min(total.first_send, part.first_send)
        total.last_ack = max(total.last_ack, part.last_ack)
        total.refused.update(part.refused)
        total.bad_wrong += part.bad_wrong
        total.latencies += part.latencies
        total.acked_upto.update(part.acked_upto)
        total.first_seq.update(part.first_seq)
    return total


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def simulate(knobs: Knobs, processes: int = 1) -> Tally:
    """Split the agents over `processes` processes (each its own event loop) and merge."""
    if processes <= 1:
        return _worker(knobs)
    shares = [knobs.agents // processes + (i < knobs.agents % processes) for i in range(processes)]
    firsts = [sum(shares[:i]) for i in range(processes)]
    jobs = [
        Knobs(**{**knobs.__dict__, "agents": n, "first_index": f, "seed": knobs.seed + i})
        for i, (n, f) in enumerate(zip(shares, firsts, strict=True))
    ]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        return _merge(pool.map(_worker, jobs))


def summary(knobs: Knobs, tally: Tally, elapsed: float, database: str | None) -> dict[str, Any]:
    busy = tally.last_ack - tally.first_send
    result: dict[str, Any] = {
        "agents": len(tally.acked_upto),
        "enroll_failures": tally.enroll_failures,
        "sent": tally.sent,
        "acked": tally.acked,
        "refused": sum(tally.refused.values()),
        "refused_by_code": dict(tally.refused),
        "good_refused": tally.good_refused,
        "bad_sent": tally.bad_sent,
        "bad_wrong": tally.bad_wrong[:10],
        "replays": tally.replays,
        "replays_not_duplicate": tally.replays_not_duplicate,
        "failures": tally.failures,
        "pending": tally.pending,
        "seconds": round(elapsed, 2),
        # From the first envelope sent to the last acknowledged: enrollment is not in it.
        "events_per_s": round(tally.acked / busy, 1) if busy > 0 else 0.0,
        "p50_ms": round(_percentile(tally.latencies, 0.50), 1),
        "p99_ms": round(_percentile(tally.latencies, 0.99), 1),
        "lost": None,
        "duplicates": None,
    }
    if database:
        result.update(check_store(database, tally.first_seq, tally.acked_upto))
    return result


def verify_rate(n: int = 3000) -> float:
    """The reference: Ed25519 verifications per second on one core of this machine, now."""
    key = Ed25519PrivateKey.generate()
    sealed = envelope.seal(b"p" * 400, key, key_id="k")
    public = key.public_key()
    t0 = time.perf_counter()
    for _ in range(n):
        envelope.verify(sealed, public)
    return n / (time.perf_counter() - t0)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__)
    p.add_argument("--collector", required=True, help="HOST:PORT of the collector's gRPC port")
    p.add_argument("--token", required=True, help="enrollment token (tokens create --uses N)")
    p.add_argument("--agents", type=int, required=True)
    p.add_argument("--duration", type=float, required=True, help="seconds of traffic")
    p.add_argument("--processes", type=int, default=1, help="simulator processes")
    p.add_argument("--speedup", type=float, default=1.0, help="divide the agent's intervals")
    p.add_argument("--boot-storm", type=float, default=0.0, help="all boot within S seconds")
    p.add_argument("--outage-at", type=float, default=-1.0, help="network lost at S seconds")
    p.add_argument("--outage-for", type=float, default=0.0, help="for S seconds")
    p.add_argument("--bad-share", type=float, default=0.0, help="bad envelopes per good one")
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--drain-timeout", type=float, default=120.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--database", help="the collector's SQLAlchemy URL, to count lost events")
    return p


def main(argv: list[str] | None = None) -> int:
    status, result = run(argv)
    print(json.dumps(result, sort_keys=True))
    return status


def run(argv: list[str] | None = None) -> tuple[int, dict[str, Any]]:
    """Parse the command line, simulate, and return the exit status and the summary."""
    args = _parser().parse_args(argv)
    host, port = args.collector.rsplit(":", 1)
    ca_pem = fetch_pinned_ca(host, int(port), tokens.parse(args.token).ca_fingerprint)
    knobs = Knobs(
        collector=args.collector,
        token=args.token,
        ca_pem=ca_pem,
        agents=args.agents,
        duration=args.duration,
        speedup=args.speedup,
        boot_storm=args.boot_storm,
        outage_at=args.outage_at,
        outage_for=args.outage_for,
        bad_share=args.bad_share,
        batch=args.batch,
        drain_timeout=args.drain_timeout,
        seed=args.seed,
    )
    reference = verify_rate()
    t0 = time.monotonic()
    tally = simulate(knobs, args.processes)
    result = summary(knobs, tally, time.monotonic() - t0, args.database)
    result["verify_per_s_one_core"] = round(reference)
    result["ratio_to_verify"] = round(result["events_per_s"] / reference, 3)
    ok = result["lost"] in (0, None) and not tally.bad_wrong and not tally.replays_not_duplicate
    return (0 if ok else 1), result


if __name__ == "__main__":
    sys.exit(main())
