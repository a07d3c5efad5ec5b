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
import math
import multiprocessing
import queue
import random
import resource
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from agent.backoff import delay_for
from agent.config import Settings
from agent.pinning import fetch_pinned_ca
from bench.fleet_agent import BAD_CODES, SimAgent
from bench.fleet_cadence import Cadence, Intervals
from bench.fleet_stats import Tally, latency_split, merge
from bench.fleet_store import check_store
from wire import RETRY_PUSHBACK_METADATA, envelope, tokens
from wire.envelope import raw_public_key
from wire.v1 import collector_pb2, collector_pb2_grpc

DEFAULTS = Settings()
ENROLL_RETRYABLE = (
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
)


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
    timeout: float = 15.0  # per Publish, as the real agent's shipper
    enroll_concurrency: int = 32  # enrollments in flight per simulator process
    drain_timeout: float = 120.0
    seed: int = 1
    first_index: int = 0
    # Deliver each agent's boot snapshot before the clock starts, then run its cadence from
    # a random phase: the steady state of a fleet that is already up, with its inventory.
    warm: bool = False


@dataclass(frozen=True)
class Enrolled:
    target: str
    key_pem: bytes
    cert_pem: bytes


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit: one socket per simulated agent. The new soft."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _hint(exc: grpc.aio.AioRpcError) -> float | None:
    """The collector's retry-after hint in seconds, when it gave one."""
    for key, value in exc.trailing_metadata() or ():
        if key == RETRY_PUSHBACK_METADATA and str(value).isdigit():
            return int(value) / 1000
    return None


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


def enroll_request(
    agent: SimAgent, token: tokens.EnrollmentToken, version: str
) -> tuple[collector_pb2.EnrollRequest, bytes]:
    """`agent`'s enrollment, with a CSR for a fresh TLS key; the request and that key (PEM)."""
    csr, key_pem = _csr(agent.agent_id)
    request = collector_pb2.EnrollRequest(
        token_id=token.token_id,
        token_secret=token.secret.encode(),
        public_key=raw_public_key(agent.key.public_key()),
        host_name=agent.host_name,
        host_os_type="linux",
        agent_version=version,
        csr_pem=csr,
    )
    return request, key_pem


class Link:
    """One agent's own mTLS channel (one TLS connection), reopened after a lost network."""

    def __init__(self, ca_pem: bytes, enrolled: Enrolled) -> None:
        self._creds = grpc.ssl_channel_credentials(ca_pem, enrolled.key_pem, enrolled.cert_pem)
        self._target = enrolled.target
        self.channel = grpc.aio.secure_channel(self._target, self._creds)
        self.stub = collector_pb2_grpc.CollectorStub(self.channel)

    async def reopen(self) -> None:
        await self.channel.close()
        self.channel = grpc.aio.secure_channel(self._target, self._creds)
        self.stub = collector_pb2_grpc.CollectorStub(self.channel)


class Driver:
    """Runs one process's share of the fleet on one event loop.

    `ready` blocks until every simulator process has enrolled its agents, so that the
    traffic of all processes starts together.
    """

    def __init__(self, knobs: Knobs, ready: Callable[[], None] = lambda: None) -> None:
        self.k = knobs
        self.t = Tally(agents=knobs.agents)
        self.ready = ready
        self.start = 0.0
        self.to_wall = time.time() - time.monotonic()
        self.intervals = Intervals.of(DEFAULTS, knobs.speedup)
        self.token = tokens.parse(knobs.token)
        self.host = knobs.collector.rsplit(":", 1)[0]
        self.credit: dict[str, float] = {}  # bad envelopes owed, per agent (--bad-share)

    async def run(self) -> Tally:
        self.t.rss_base_mb = _rss_mb()
        rng = random.Random(self.k.seed)
        keep = 16 if self.k.bad_share > 0 else 0
        agents = [
            SimAgent(self.k.first_index + i, random.Random(rng.random()), keep=keep)
            for i in range(self.k.agents)
        ]
        t0 = time.monotonic()
        enrolled = await self._enroll_all(agents)
        self.t.enroll_s = time.monotonic() - t0
        links: dict[str, Link] = {}
        if self.k.warm:
            t0 = time.monotonic()
            links = await self._warm_all(agents, enrolled)
            self.t.warm_s = time.monotonic() - t0
        await asyncio.to_thread(self.ready)
        self.start, cpu0 = time.monotonic(), _cpu_s()
        self.t.start = self.start + self.to_wall
        self.t.end = self.t.start + self.k.duration
        lives = [
            self._life(a, e, links.get(a.agent_id))
            for a, e in zip(agents, enrolled, strict=True)
            if e
        ]
        await asyncio.gather(self._sample_memory(), *lives)
        self.t.cpu_s = _cpu_s() - cpu0
        self.t.rss_peak_mb = _rss_mb("VmHWM")
        return self.t

    def _now(self) -> float:
        return time.monotonic() - self.start

    async def _sample_memory(self) -> None:
        """RSS at the end of the traffic window: every channel open, before the drain."""
        await asyncio.sleep(self.k.duration)
        self.t.rss_end_mb = _rss_mb()

    def _boot_delay(self, agent: SimAgent) -> float:
        window = self.k.boot_storm or self.intervals.model
        return agent.rng.uniform(0, min(window, self.k.duration / 2))

    async def _enroll_all(self, agents: list[SimAgent]) -> list[Enrolled | None]:
        creds = grpc.ssl_channel_credentials(self.k.ca_pem)
        async with grpc.aio.secure_channel(self.k.collector, creds) as channel:
            stub = collector_pb2_grpc.CollectorStub(channel)
            gate = asyncio.Semaphore(self.k.enroll_concurrency)

            async def one(agent: SimAgent) -> Enrolled | None:
                async with gate:
                    return await self._enroll(agent, stub)

            return await asyncio.gather(*(one(a) for a in agents))

    async def _enroll(
        self, agent: SimAgent, stub: collector_pb2_grpc.CollectorStub
    ) -> Enrolled | None:
        request, key_pem = enroll_request(agent, self.token, "fleet-sim")
        for attempt in range(12):
            try:
                reply = await stub.Enroll(request, timeout=30)
                break
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in ENROLL_RETRYABLE:
                    self.t.enroll_errors[f"{exc.code().name}: {exc.details()}"] += 1
                    break
                await asyncio.sleep(delay_for(attempt, retry_after=_hint(exc), rand=random.random))
        else:
            reply = None
        if reply is None or not reply.client_cert_pem:
            self.t.enroll_failures += 1
            return None
        agent.start_at(reply.last_seq, bytes(reply.last_digest))
        self.t.first_seq[agent.agent_id] = reply.last_seq + 1
        self.t.acked_upto[agent.agent_id] = reply.last_seq
        return Enrolled(f"{self.host}:{reply.mtls_port}", key_pem, bytes(reply.client_cert_pem))

    async def _warm_all(
        self, agents: list[SimAgent], enrolled: list[Enrolled | None]
    ) -> dict[str, Link]:
        """Every enrolled agent's boot snapshot delivered, unmeasured; their open links."""
        gate = asyncio.Semaphore(self.k.enroll_concurrency)
        links: dict[str, Link] = {}

        async def one(agent: SimAgent, enrolled: Enrolled) -> None:
            async with gate:
                link = links[agent.agent_id] = Link(self.k.ca_pem, enrolled)
                agent.append(agent.snapshot(), boot=True)
                self.t.warm_events += len(agent.pending)
                await self._deliver(agent, link)

        await asyncio.gather(*(one(a, e) for a, e in zip(agents, enrolled, strict=True) if e))
        return links

    async def _deliver(self, agent: SimAgent, link: Link) -> None:
        """Send until acknowledged, counting nothing: the warm-up before the clock."""
        attempt = 0
        while agent.pending:
            batch = agent.pending[: self.k.batch]
            request = collector_pb2.PublishRequest(envelopes=[p.envelope for p in batch])
            try:
                reply = await link.stub.Publish(request, timeout=self.k.timeout)
            except grpc.aio.AioRpcError as exc:
                await asyncio.sleep(delay_for(attempt, retry_after=_hint(exc), rand=random.random))
                attempt += 1
                continue
            attempt = 0
            self.t.good_refused += len(reply.rejections)
            agent.settle(len(batch))
            self.t.acked_upto[agent.agent_id] = agent.seq - len(agent.pending)

    async def _life(self, agent: SimAgent, enrolled: Enrolled, link: Link | None) -> None:
        """Boot, then seal what the cadence says when it says; a second task ships."""
        if link is None:
            await asyncio.sleep(self._boot_delay(agent))
            link = Link(self.k.ca_pem, enrolled)
            agent.append(agent.snapshot(), time.monotonic(), boot=True)
            cadence = Cadence.after_boot(self.intervals, self._now())
        else:  # warm: booted before the clock, each loop at its own point in its interval
            self.t.booted_at.append(self.t.start)
            cadence = Cadence.dephased(self.intervals, self._now(), agent.rng)
        wake = asyncio.Event()
        shipper = asyncio.create_task(self._ship_forever(agent, link, wake))
        wake.set()
        while True:
            await asyncio.sleep(max(0.0, min(cadence.next_at(), self.k.duration) - self._now()))
            now = self._now()
            if now >= self.k.duration:
                break
            events = [e for due in cadence.due(now) for e in agent.events_for(due)]
            if events:
                agent.append(events, time.monotonic())
                wake.set()
        shipper.cancel()
        await asyncio.gather(shipper, return_exceptions=True)
        await self._ship(agent, link, self._now() + self.k.drain_timeout)
        self.t.pending += len(agent.pending)
        await link.channel.close()

    async def _ship_forever(self, agent: SimAgent, link: Link, wake: asyncio.Event) -> None:
        while True:
            await wake.wait()
            wake.clear()
            await self._ship(agent, link, math.inf)
            await self._misbehave(agent, link)

    def _outage_left(self) -> float:
        end = self.k.outage_at + self.k.outage_for
        return end - self._now() if self.k.outage_at <= self._now() < end else 0.0

    async def _ship(self, agent: SimAgent, link: Link, until: float) -> None:
        """Send pending envelopes in batches until all are acknowledged or `until` passes."""
        attempt = 0
        while agent.pending and self._now() < until:
            if self._outage_left() > 0:  # the network is gone; a new connection after it
                await asyncio.sleep(self._outage_left())
                await link.reopen()
            batch = agent.pending[: self.k.batch]
            request = collector_pb2.PublishRequest(envelopes=[p.envelope for p in batch])
            self.t.sent += len(batch)
            self.t.first_send = min(self.t.first_send, time.time())
            try:
                reply = await link.stub.Publish(request, timeout=self.k.timeout)
            except grpc.aio.AioRpcError as exc:
                self.t.failures += 1
                self.t.failed_by_code[exc.code().name] += 1
                wait = delay_for(attempt, retry_after=_hint(exc), rand=agent.rng.random)
                await asyncio.sleep(wait)
                attempt += 1
                continue
            attempt = 0
            self._settled(agent, reply, len(batch))

    def _settled(self, agent: SimAgent, reply: collector_pb2.PublishResponse, count: int) -> None:
        now = time.monotonic()
        self.t.last_ack = now + self.to_wall
        for rejection in reply.rejections:
            self.t.refused[rejection.code] += 1
        self.t.good_refused += len(reply.rejections)
        booting = not agent.booted
        done = agent.settle(count)
        if booting and agent.booted:
            self.t.booted_at.append(self.t.last_ack)
        self.t.acked += len(done) - len(reply.rejections)
        self.t.ack(done, now, self.to_wall)
        self.t.acked_upto[agent.agent_id] = done[-1].seq
        owed = self.credit.get(agent.agent_id, 0.0) + self.k.bad_share * len(done)
        self.credit[agent.agent_id] = owed

    async def _misbehave(self, agent: SimAgent, link: Link) -> None:
        """The bad envelopes owed (each checked for the right refusal) and exact replays.

        Only while nothing is pending: a forked envelope claims the seq after the agent's
        last sealed one, which must be the collector's last acknowledged one too, or the
        collector sees a gap rather than a fork (the cadence task may seal meanwhile).
        """
        while not agent.pending and agent.acked and self.credit.get(agent.agent_id, 0.0) >= 1.0:
            self.credit[agent.agent_id] -= 1.0
            await self._one_bad(agent, link)

    async def _one_bad(self, agent: SimAgent, link: Link) -> None:
        kind = agent.rng.choice([*BAD_CODES, "resent"])
        bad = agent.exact_replay() if kind == "resent" else agent.bad_envelope(kind)
        assert bad is not None
        request = collector_pb2.PublishRequest(envelopes=[bad])
        try:
            reply = await link.stub.Publish(request, timeout=self.k.timeout)
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


def _worker(knobs: Knobs, index: int, go: ProcessEvent, out: Any) -> None:
    """One simulator process: enroll, say so, wait for every other one, drive, report."""

    def ready() -> None:
        out.put(("enrolled", index, None))
        go.wait()

    try:
        raise_fd_limit()
        out.put(("done", index, asyncio.run(Driver(knobs, ready).run())))
    except BaseException:
        out.put(("failed", index, traceback.format_exc()))


def _shares(knobs: Knobs, processes: int) -> list[Knobs]:
    shares = [knobs.agents // processes + (i < knobs.agents % processes) for i in range(processes)]
    firsts = [sum(shares[:i]) for i in range(processes)]
    return [
        replace(knobs, agents=n, first_index=f, seed=knobs.seed + i)
        for i, (n, f) in enumerate(zip(shares, firsts, strict=True))
    ]


def simulate(knobs: Knobs, processes: int = 1) -> Tally:
    """Split the agents over `processes` processes (each its own event loop) and merge."""
    raise_fd_limit()
    if processes <= 1:
        return asyncio.run(Driver(knobs).run())
    parts: list[Tally] = []
    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    jobs = _shares(knobs, processes)
    procs = [ctx.Process(target=_worker, args=(j, i, go, out)) for i, j in enumerate(jobs)]
    for proc in procs:
        proc.start()
    try:
        enrolled = 0
        while len(parts) < processes:
            try:
                kind, index, value = out.get(timeout=5)
            except queue.Empty:
                if any(p.exitcode not in (None, 0) for p in procs):
                    raise RuntimeError("a simulator process died") from None
                continue
            if kind == "failed":
                raise RuntimeError(f"simulator process {index} failed:\n{value}")
            if kind == "enrolled":
                enrolled += 1
                if enrolled == processes:
                    go.set()  # the traffic of every process starts together
            else:
                parts.append(value)
        return merge(parts)
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()


def summary(tally: Tally, elapsed: float, database: str | None) -> dict[str, Any]:
    busy = tally.last_ack - tally.first_send
    agents = len(tally.acked_upto)
    result: dict[str, Any] = {
        "agents": agents,
        "enroll_failures": tally.enroll_failures,
        "enroll_errors": dict(tally.enroll_errors.most_common(5)),
        "enroll_s": round(tally.enroll_s, 1),
        "warm_s": round(tally.warm_s, 1),
        "warm_events": tally.warm_events,  # stored before the clock; not in acked
        "started_at": round(tally.start, 3),  # wall time the traffic started
        "traffic_s": round(tally.end - tally.start, 1),
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
        "failed_by_code": dict(tally.failed_by_code),
        "pending": tally.pending,
        "seconds": round(elapsed, 2),
        # From the first envelope sent to the last acknowledged: enrollment is not in it.
        "events_per_s": round(tally.acked / busy, 1) if busy > 0 else 0.0,
        **latency_split(tally),
        "sim_cpu_s": round(tally.cpu_s, 1),
        "sim_rss_mb": round(tally.rss_end_mb),
        "sim_rss_peak_mb": round(tally.rss_peak_mb),
        "sim_rss_per_1000_agents_mb": (
            round((tally.rss_end_mb - tally.rss_base_mb) / agents * 1000, 1) if agents else 0.0
        ),
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
    p.add_argument("--timeout", type=float, default=15.0, help="per Publish (agent's: 15 s)")
    p.add_argument("--enroll-concurrency", type=int, default=32, help="per simulator process")
    p.add_argument("--drain-timeout", type=float, default=120.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--database", help="the collector's SQLAlchemy URL, to count lost events")
    p.add_argument(
        "--warm",
        action="store_true",
        help="deliver every boot snapshot before the clock: measure a fleet already up",
    )
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
        timeout=args.timeout,
        enroll_concurrency=args.enroll_concurrency,
        drain_timeout=args.drain_timeout,
        seed=args.seed,
        warm=args.warm,
    )
    reference = verify_rate()
    t0 = time.monotonic()
    tally = simulate(knobs, args.processes)
    result = summary(tally, time.monotonic() - t0, args.database)
    result["verify_per_s_one_core"] = round(reference)
    result["ratio_to_verify"] = round(result["events_per_s"] / reference, 3)
    ok = result["lost"] in (0, None) and not tally.bad_wrong and not tally.replays_not_duplicate
    return (0 if ok else 1), result


if __name__ == "__main__":
    sys.exit(main())
