"""Fill a collector store as a fleet does: simulated agents (bench.fleet_agent) enroll with
enrollment tokens and publish a boot snapshot, then a few steady passes, through
CollectorService in this process (no gRPC transport) with the shipped rules."""

from __future__ import annotations

import random
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any, NoReturn

import grpc

from bench.collector_seed import GROUPS, RUNTIMES, Model, catalog, draw
from bench.fleet_agent import SimAgent
from collector.governance import load_rule_dir
from collector.ratelimit import Buckets
from collector.service import CollectorService
from collector.store import Store
from wire.envelope import raw_public_key
from wire.tokens import secret_digest
from wire.v1 import collector_pb2
from wire.v1.events_pb2 import Envelope, Event, InferenceProcess, ModelFile

RULES = Path(__file__).resolve().parent.parent / "rules"
BATCH = 500  # envelopes per Publish, as the agent's shipper sends at most
SECRET = b"fleet-pages"
CATALOG = 2_000  # shared models the steady passes draw new files from
# Per agent and steady pass: a new model file, one of its boot models removed, an extra
# inference process started (or, if one runs, stopped).
NEW_MODEL, REMOVE_MODEL, PROCESS_CHANGE = 0.1, 0.03, 0.2
_RETRIED = (grpc.StatusCode.ABORTED, grpc.StatusCode.UNAVAILABLE)  # what an agent resends on
_TRIES = 20


class FillError(Exception):
    """The collector refused what a genuine simulated agent sent."""


class Aborted(FillError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details

    def __reduce__(self) -> tuple[type[Aborted], tuple[grpc.StatusCode, str]]:
        # A fill process's error crosses back to the pool pickled: rebuild it whole.
        return (Aborted, (self.code, self.details))


class DirectContext:
    """The few grpc.ServicerContext calls the service makes, for a direct call (no gRPC);
    an abort raises Aborted with the status code."""

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def set_trailing_metadata(self, _: Any) -> None:
        pass

    def time_remaining(self) -> float | None:
        return None

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise Aborted(code, details)


@dataclass
class Tally:
    """One fill process's work; times are time.monotonic(), comparable across processes."""

    boot_events: int = 0
    steady_events: int = 0
    started: float = 0.0
    booted: float = 0.0
    done: float = 0.0
    retries: int = 0
    duplicates: int = 0


@dataclass
class Kept:
    """What the steady passes reuse of one agent's boot snapshot."""

    index: int
    agent: SimAgent
    health: Event
    model: Event | None  # a boot model it may remove
    extra: Event | None = None  # a process a steady pass started, still running
    added: int = 0


def group_of(index: int) -> str:
    return GROUPS[index % len(GROUPS)]


def add_tokens(store: Store, agents: int) -> None:
    """One enrollment token per group, for as many agents as that group gets."""
    for g, group in enumerate(GROUPS):
        uses = len(range(g, agents, len(GROUPS)))
        if uses:
            store.add_enrollment_token(
                token_id=f"fleet-{group}",
                secret_sha256=secret_digest(SECRET),
                group=group,
                created_at=datetime.now(UTC),
                expires_at=None,
                max_uses=uses,
            )


def fill(url: str, schema: str | None, *, agents: int, processes: int, passes: int) -> list[Tally]:
    """Enroll and drive `agents` simulated agents, split over `processes` processes."""
    store = Store.open(url, schema=schema)
    try:
        add_tokens(store, agents)
    finally:
        store.close()
    with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
        shares = [
            pool.submit(fill_share, url, schema, range(w, agents, processes), passes, agents)
            for w in range(processes)
        ]
        return [share.result() for share in shares]


def fill_share(url: str, schema: str | None, indexes: range, passes: int, agents: int) -> Tally:
    """One process's share: boot every agent of `indexes`, then `passes` steady passes."""
    store = Store.open(url, schema=schema)
    try:
        rules = load_rule_dir(RULES)
        service = CollectorService(
            store=store,
            rules=lambda: rules,
            enroll_limit=Buckets(per_second=1e6, burst=agents),
        )
        return _Share(service, random.Random(indexes.start)).run(indexes, passes)
    finally:
        store.close()


class _Share:
    def __init__(self, service: CollectorService, rng: random.Random) -> None:
        self.service = service
        self.rng = rng
        self.catalog = catalog(random.Random(20261204), CATALOG)
        self.tally = Tally()

    def run(self, indexes: range, passes: int) -> Tally:
        self.tally.started = time.monotonic()
        kept = []
        for n, index in enumerate(indexes, 1):
            kept.append(self.boot(index))
            if n % 1000 == 0:
                rate = self.tally.boot_events / (time.monotonic() - self.tally.started)
                print(
                    f"  fill {indexes.start}: {n:,} agents booted, {rate:,.0f} events/s", flush=True
                )
        self.tally.booted = time.monotonic()
        for _ in range(passes):
            for one in kept:
                events = steady_pass(one, self.rng, self.catalog)
                self.tally.steady_events += self.publish(one.agent, events)
        self.tally.done = time.monotonic()
        return self.tally

    def boot(self, index: int) -> Kept:
        agent = SimAgent(index, random.Random(index))
        self.enroll(agent, group_of(index))
        events = agent.snapshot()
        kept = keep(index, agent, events, self.rng)
        self.tally.boot_events += self.publish(agent, events)
        return kept

    def enroll(self, agent: SimAgent, group: str) -> None:
        request = collector_pb2.EnrollRequest(
            token_id=f"fleet-{group}",
            token_secret=SECRET,
            public_key=raw_public_key(agent.key.public_key()),
            host_name=agent.host_name,
            host_os_type="linux",
            agent_version="0.4.2",
        )
        self.service.Enroll(request, DirectContext())

    def publish(self, agent: SimAgent, events: list[Event]) -> int:
        """Seal `events` into the agent's chain and publish them in batches; events stored."""
        agent.append(events)
        stored = 0
        for start in range(0, len(agent.pending), BATCH):
            batch = [p.envelope for p in agent.pending[start : start + BATCH]]
            stored += self.send(agent.agent_id, batch)
        agent.pending.clear()
        return stored

    def send(self, agent_id: str, envelopes: list[Envelope]) -> int:
        request = collector_pb2.PublishRequest(envelopes=envelopes)
        for attempt in range(_TRIES):
            try:
                reply = self.service.Publish(request, DirectContext())
            except Aborted as exc:
                if exc.code not in _RETRIED or attempt == _TRIES - 1:
                    raise
                self.tally.retries += 1
                time.sleep(0.05 * (attempt + 1))
                continue
            if reply.rejections or reply.accepted + reply.duplicates != len(envelopes):
                raise FillError(f"agent {agent_id}: {reply}")
            self.tally.duplicates += reply.duplicates
            return int(reply.accepted)
        raise AssertionError("unreachable")


def keep(index: int, agent: SimAgent, events: list[Event], rng: random.Random) -> Kept:
    models = [e for e in events if e.WhichOneof("body") == "model_file"]
    health = [e for e in events if e.WhichOneof("body") == "agent_health"]
    if not health:
        raise FillError("a boot snapshot without a health event")
    return Kept(index, agent, health[-1], rng.choice(models) if models else None)


def steady_pass(kept: Kept, rng: random.Random, models: list[Model]) -> list[Event]:
    """What one agent sends in a steady pass: now and then a new model, a removed one, a
    process start or stop; always a health event."""
    now = int(time.time() * 1000)
    events = []
    if rng.random() < NEW_MODEL:
        kept.added += 1
        model = models[draw(rng, len(models))]
        events.append(model_event(kept, model, now))
    if kept.model is not None and rng.random() < REMOVE_MODEL:
        events.append(again(kept.model, now, "removed"))
        kept.model = None
    if rng.random() < PROCESS_CHANGE:
        if kept.extra is None:
            kept.extra = process_event(kept, rng, now)
            events.append(kept.extra)
        else:
            events.append(again(kept.extra, now, "stopped"))
            kept.extra = None
    return [*events, again(kept.health, now, "snapshot")]


def again(event: Event, now_ms: int, action: str) -> Event:
    copy = Event()
    copy.CopyFrom(event)
    copy.timestamp_ms, copy.action = now_ms, action
    return copy


def model_event(kept: Kept, model: Model, now_ms: int) -> Event:
    """A catalogue model (shared across hosts: one digest on many of them) in a new file."""
    f = model.fields
    risk = str(f.get("ai.model.risk", ""))
    file = ModelFile(
        path=f"/home/u{kept.index}/Downloads/experiments/{kept.added}/{model.name}.bin",
        size=int(f["file.size"]),  # type: ignore[call-overload]
        sha256=model.sha256,
        format=str(f["ai.model.format"]),
        name=model.name,
        architecture=str(f["ai.model.architecture"]),
        parameters=int(f["ai.model.parameters"]),  # type: ignore[call-overload]
        quantization=str(f.get("ai.model.quantization", "")),
        license=str(f.get("ai.model.license", "")),
        kind=str(f.get("ai.model.kind", "")),
        risk=risk,
        unsafe=risk == "dangerous",
        unsafe_reasons=["posix.system"] if risk == "dangerous" else [],
        origin="user",
    )
    return _event(kept, now_ms, "discovered", model_file=file)


def process_event(kept: Kept, rng: random.Random, now_ms: int) -> Event:
    runtime = rng.choice(RUNTIMES)
    exposed = rng.random() < 0.05
    process = InferenceProcess(
        pid=rng.randint(2_000, 60_000),
        name=runtime,
        executable=f"/usr/local/bin/{runtime}",
        runtime_name=runtime,
        listen_address="0.0.0.0" if exposed else "127.0.0.1",
        listen_port=11434,
        listen_exposed=exposed,
        gpu_memory_bytes=rng.randint(0, 24) * 2**30,
        classifier_score=round(rng.random(), 3),
    )
    return _event(kept, now_ms, "started", inference_process=process)


def _event(kept: Kept, now_ms: int, action: str, **body: Any) -> Event:
    return Event(
        timestamp_ms=now_ms,
        action=action,
        host_name=kept.agent.host_name,
        host_os_type="linux",
        **body,
    )
