"""The Collector gRPC service: authenticate, verify, check the chain, evaluate rules, store.

Verification happens before any parsing of the payload; refusals map to gRPC status codes
and are counted, and nothing refused is stored or evaluated.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf.message import DecodeError

from collector.chain import ChainState, check_link
from collector.errors import RefusedEnvelope
from collector.governance import RuleSet
from collector.governance.correlations import Tally
from collector.outcome import Outcome, correlation_alerts, evaluate_event
from collector.store import AgentRecord, AgentState, Gap, Store, StoredEvent
from collector.store.correlation import Window
from collector.store.store import ConcurrentUpdate
from wire import ACKED_SEQ_METADATA, envelope
from wire.events import flatten_payload
from wire.tokens import secret_digest
from wire.v1 import collector_pb2, collector_pb2_grpc
from wire.v1.events_pb2 import Envelope, Payload

log = logging.getLogger(__name__)

MAX_BATCH = 1000
STATUS_FOR = {
    "unknown_agent": grpc.StatusCode.UNAUTHENTICATED,
    "signature": grpc.StatusCode.UNAUTHENTICATED,
    "payload_type": grpc.StatusCode.INVALID_ARGUMENT,
    "payload_size": grpc.StatusCode.INVALID_ARGUMENT,
    "identity": grpc.StatusCode.UNAUTHENTICATED,
    "revoked": grpc.StatusCode.PERMISSION_DENIED,
    "replay": grpc.StatusCode.ALREADY_EXISTS,
    "fork": grpc.StatusCode.FAILED_PRECONDITION,
    "clock": grpc.StatusCode.OUT_OF_RANGE,
    "malformed": grpc.StatusCode.INVALID_ARGUMENT,
}


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    context.abort(code, details)
    raise AssertionError("grpc's abort() raises")  # grpc is untyped here; tell the checker


@dataclass
class Counters:
    """Refusals by check, for the operator; thread-safe."""

    refused: Counter[str] = field(default_factory=Counter)
    accepted: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, code: str | None = None, accepted: int = 0) -> None:
        with self.lock:
            if code:
                self.refused[code] += 1
            self.accepted += accepted


@dataclass
class _Batch:
    state: ChainState
    events: list[StoredEvent] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    outcome: Outcome = field(default_factory=Outcome)
    rules: RuleSet = field(default_factory=lambda: RuleSet(()))
    refusal: RefusedEnvelope | None = None
    refused_seq: int = 0


class CollectorService(collector_pb2_grpc.CollectorServicer):
    def __init__(
        self,
        *,
        store: Store,
        rules: Callable[[], RuleSet],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._rules = rules
        self._clock = clock
        self.counters = Counters()

    def Enroll(
        self, request: collector_pb2.EnrollRequest, context: grpc.ServicerContext
    ) -> collector_pb2.EnrollResponse:
        try:
            public_key = Ed25519PublicKey.from_public_bytes(request.public_key)
        except ValueError:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "public_key: not a raw Ed25519 key")
        now = self._clock()
        group = self._store.redeem_enrollment_token(
            token_id=request.token_id, secret_sha256=secret_digest(request.token_secret), now=now
        )
        if group is None:
            self.counters.count("enrollment_token")
            _abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                "enrollment token unknown, already used or expired",
            )
        agent_id = envelope.agent_id_for(public_key)
        existing = self._store.get_agent(agent_id)
        if existing is None:
            record = AgentRecord(
                agent_id=agent_id,
                public_key=bytes(request.public_key),
                host_name=request.host_name[:255],
                os_type=request.host_os_type[:32],
                group=group,
                agent_version=request.agent_version[:64],
                enrolled_at=now,
            )
            self._store.add_agent(record)
            last_seq = 0
        else:
            last_seq = existing.last_seq
        log.info("enrolled agent %s (%s) into group %s", agent_id, request.host_name, group)
        return collector_pb2.EnrollResponse(agent_id=agent_id, host_group=group, last_seq=last_seq)

    def Publish(
        self, request: collector_pb2.PublishRequest, context: grpc.ServicerContext
    ) -> collector_pb2.PublishResponse:
        envelopes = request.envelopes
        if not envelopes:
            return collector_pb2.PublishResponse()
        if len(envelopes) > MAX_BATCH:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"more than {MAX_BATCH} envelopes")
        agent = self._authenticate(envelopes, context)
        batch = self._check(agent, envelopes)
        if batch.events or batch.gaps:
            window = _window(batch.rules, batch.outcome)
            try:
                tallies = self._store.ingest(
                    agent_id=agent.record.agent_id,
                    expected_last_seq=agent.last_seq,
                    last_seq=batch.state.last_seq,
                    last_digest=batch.state.last_digest,
                    events=batch.events,
                    gaps=batch.gaps,
                    alerts=batch.outcome.alerts,
                    now=self._clock(),
                    window=window,
                )
            except ConcurrentUpdate:
                _abort(context, grpc.StatusCode.ABORTED, "another replica advanced this agent")
            self.counters.count(accepted=len(batch.events))
            if tallies:
                self._raise_correlations(batch.rules, tallies, window)
        if batch.refusal is not None:
            return self._refuse(batch, context)
        return collector_pb2.PublishResponse(
            acked_seq=batch.state.last_seq, accepted=len(batch.events)
        )

    def _authenticate(
        self, envelopes: Sequence[Envelope], context: grpc.ServicerContext
    ) -> AgentState:
        key_ids = {env.key_id for env in envelopes}
        if len(key_ids) != 1:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "one agent's envelopes per request")
        (key_id,) = key_ids
        agent = self._store.get_agent(key_id)
        if agent is None:
            self.counters.count("unknown_agent")
            _abort(context, grpc.StatusCode.UNAUTHENTICATED, f"unknown agent key {key_id[:64]!r}")
        if agent.revoked:
            self.counters.count("revoked")
            _abort(context, grpc.StatusCode.PERMISSION_DENIED, f"agent {key_id} is revoked")
        return agent

    def _raise_correlations(
        self, rules: RuleSet, tallies: dict[tuple[str, str], Tally], window: Window
    ) -> None:
        """Alert where a window fires. The matches were kept with the batch; a failure here
        is logged, never turned into a refusal of events already stored (the agent would
        resend them as replays)."""
        try:
            alerts = correlation_alerts(rules, tallies, list(window.entries), self._clock())
            if alerts:
                self._store.raise_alerts(alerts)
        except Exception:  # the store is away or a bug: the alert comes with the next match
            log.exception("raising correlation alerts failed")

    def _correlate(self, rules: RuleSet, outcome: Outcome) -> None:
        """The same, in a transaction of its own, for the collector's own events."""
        window = _window(rules, outcome)
        if not window.entries:
            return
        try:
            tallies = self._store.correlate(
                window.entries,
                seconds=dict(window.seconds),
                now=self._clock(),
                counted=window.counted,
            )
        except Exception:  # reporting must not fail the caller
            log.exception("correlation of %d matches failed", len(window.entries))
            return
        self._raise_correlations(rules, tallies, window)

    def record_collector_event(self, event: dict[str, Any]) -> None:
        """Evaluate and store one shadowai.collector event from the collector itself."""
        now = self._clock()
        event.setdefault("@timestamp", now.isoformat())
        event["event.dataset"] = "shadowai.collector"
        outcome = Outcome()
        agent_id, rules = str(event.get("agent.id", "")), self._rules()
        evaluate_event(rules, event, agent_id=agent_id, seq=0, now=now, into=outcome)
        self._store.add_collector_event(event, alerts=outcome.alerts, at=now)
        self._correlate(rules, outcome)

    def _check(self, agent: AgentState, envelopes: Sequence[Envelope]) -> _Batch:
        """Accept envelopes in order up to the first refusal."""
        public_key = Ed25519PublicKey.from_public_bytes(agent.record.public_key)
        batch = _Batch(state=ChainState(agent.last_seq, agent.last_digest))
        now = self._clock()
        rules = batch.rules = self._rules()  # one rule set for the whole batch
        for env in envelopes:
            try:
                payload = _open(env, public_key)
                digest = envelope.digest(env)
                link = check_link(
                    payload,
                    digest=digest,
                    agent_id=agent.record.agent_id,
                    state=batch.state,
                    now_ms=int(now.timestamp() * 1000),
                )
            except RefusedEnvelope as refusal:
                self.counters.count(refusal.code)
                log.warning("refused envelope from %s: %s", agent.record.agent_id, refusal)
                batch.refusal, batch.refused_seq = refusal, batch.state.last_seq + 1
                break
            batch.state = link.state
            if link.gap is not None:
                batch.gaps.append(Gap(agent.record.agent_id, *link.gap, at=now))
            flat = _trusted_fields(flatten_payload(payload), agent)
            batch.events.append(
                StoredEvent(payload.seq, digest, env.SerializeToString(), now, flat)
            )
            evaluate_event(
                rules,
                flat,
                agent_id=agent.record.agent_id,
                seq=payload.seq,
                now=now,
                into=batch.outcome,
            )
        return batch

    def _refuse(
        self, batch: _Batch, context: grpc.ServicerContext
    ) -> collector_pb2.PublishResponse:
        refusal = batch.refusal
        assert refusal is not None
        if batch.events:
            rejection = collector_pb2.Rejection(seq=batch.refused_seq, reason=str(refusal))
            return collector_pb2.PublishResponse(
                acked_seq=batch.state.last_seq,
                accepted=len(batch.events),
                rejections=[rejection],
            )
        context.set_trailing_metadata(((ACKED_SEQ_METADATA, str(batch.state.last_seq)),))
        _abort(
            context, STATUS_FOR.get(refusal.code, grpc.StatusCode.INVALID_ARGUMENT), str(refusal)
        )


def _open(env: Envelope, public_key: Ed25519PublicKey) -> Payload:
    try:
        data = envelope.verify(env, public_key)
    except envelope.EnvelopeError as exc:
        raise RefusedEnvelope(exc.code, exc.reason) from None
    payload = Payload()
    try:
        payload.ParseFromString(data)
    except DecodeError as exc:
        raise RefusedEnvelope("malformed", f"payload: {exc}") from None
    return payload


def _trusted_fields(flat: dict[str, Any], agent: AgentState) -> dict[str, Any]:
    """The enrollment record, not the agent's say-so, decides identity and group."""
    flat["agent.id"] = agent.record.agent_id
    flat["host.group"] = agent.record.group
    flat.setdefault("host.name", agent.record.host_name)
    flat.setdefault("host.os.type", agent.record.os_type)
    return flat


def _window(rules: RuleSet, outcome: Outcome) -> Window:
    seconds = {c.id: c.seconds for c in rules.correlations}
    counted = frozenset(c.id for c in rules.correlations if c.kind == "event_count")
    entries = [e for e in outcome.window if e.correlation_id in seconds]
    return Window(entries, seconds, counted)
