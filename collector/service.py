"""The Collector gRPC service: authenticate, verify, check the chain, evaluate rules, store.

Verification happens before any parsing of the payload. Per-envelope refusals are final and
listed in the reply; whole-request problems map to gRPC status codes, with a retry hint
where waiting helps. Every reply says where the collector's copy of the agent's chain
stands, so that an agent that lost its spool can resume above it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn, Protocol, cast

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.exc import DBAPIError

from collector import notes
from collector.agent_states import AgentStates
from collector.batch import Batch, Lookups, check_batch
from collector.errors import CollectorError
from collector.forward.records import flat_alert
from collector.governance import RuleSet
from collector.governance.correlations import Tally
from collector.metrics import NO_METRICS, Metrics
from collector.outcome import Outcome, correlation_alerts, evaluate_event
from collector.pki import CsrError, ServerPki, issue_client_cert
from collector.ratelimit import Buckets, peer_host
from collector.store import AgentRecord, AgentState, NewAlert, Store
from collector.store.correlation import Window
from collector.store.delivery import CollectorEvent
from collector.store.store import ConcurrentUpdate
from wire import RETRY_PUSHBACK_METADATA, REVOKED_METADATA, envelope
from wire.tokens import secret_digest
from wire.v1 import collector_pb2, collector_pb2_grpc
from wire.v1.events_pb2 import Envelope

log = logging.getLogger(__name__)

MAX_BATCH = 1000
STORE_RETRY_MS = 2000
# A request that waited in the queue until its caller has less than this left is dropped
# unverified: its answer would come too late, and an overloaded collector that verified and
# stored such requests anyway would spend its cores on batches the agents resend.
MIN_REMAINING_S = 1.0
BUSY_RETRY_MS = 5000


def _abort(
    context: grpc.ServicerContext,
    code: grpc.StatusCode,
    details: str,
    trailers: tuple[tuple[str, str], ...] = (),
) -> NoReturn:
    if trailers:
        context.set_trailing_metadata(trailers)
    context.abort(code, details)
    raise AssertionError("grpc's abort() raises")  # grpc is untyped here; tell the checker


class StaleAgentState(CollectorError):
    """The agent's chain position this process kept was outdated; nothing was stored."""


@dataclass
class Counters:
    """Refusals by check, for the operator; thread-safe."""

    refused: Counter[str] = field(default_factory=Counter)
    accepted: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, code: str | None = None, accepted: int = 0, count: int = 1) -> None:
        with self.lock:
            if code:
                self.refused[code] += count
            self.accepted += accepted


class Forward(Protocol):
    """Where stored events and alerts go next (collector.forward.Forwarding: a SIEM)."""

    def submit(
        self,
        events: Iterable[Mapping[str, object]] = (),
        alerts: Iterable[Mapping[str, object]] = (),
    ) -> None: ...


class CollectorService(collector_pb2_grpc.CollectorServicer):
    def __init__(
        self,
        *,
        store: Store,
        rules: Callable[[], RuleSet],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        pki: ServerPki | None = None,
        require_client_cert: bool = False,
        enroll_limit: Buckets | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        forward: Forward | None = None,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self._store = store
        self._agents = AgentStates(store.get_agent)
        self._metrics = metrics
        self._forward = forward
        self._rules = rules
        self._clock = clock
        self._pki = pki
        self._require_client_cert = require_client_cert
        self._enroll_limit = enroll_limit or Buckets(per_second=0.2, burst=10)
        self._limit_lock = threading.Lock()
        self._monotonic = monotonic
        self.counters = Counters()
        self.mtls_port = 0  # set by the server when it listens for mTLS

    # -- Enroll ------------------------------------------------------------------------

    def Enroll(
        self, request: collector_pb2.EnrollRequest, context: grpc.ServicerContext
    ) -> collector_pb2.EnrollResponse:
        self._rate_limit(context)
        try:
            public_key = Ed25519PublicKey.from_public_bytes(request.public_key)
        except ValueError:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "public_key: not a raw Ed25519 key")
        with self._store_errors(context):
            return self._enroll(request, public_key, context)

    def _enroll(
        self,
        request: collector_pb2.EnrollRequest,
        public_key: Ed25519PublicKey,
        context: grpc.ServicerContext,
    ) -> collector_pb2.EnrollResponse:
        now = self._clock()
        agent_id = envelope.agent_id_for(public_key)
        existing = self._store.get_agent(agent_id)
        if existing is not None and existing.revoked:
            # Checked before the token is redeemed, so that the refusal does not spend it.
            self._refuse("revoked")
            _abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"agent {agent_id} is revoked; a revoked key cannot enroll again: remove the "
                "agent's data dir (agent.key) to enroll as a new agent",
                ((REVOKED_METADATA, "1"),),
            )
        cert = self._client_cert(request, agent_id, now, context)
        group = self._store.redeem_enrollment_token(
            token_id=request.token_id, secret_sha256=secret_digest(request.token_secret), now=now
        )
        if group is None:
            self._refuse("enrollment_token")
            _abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                "enrollment token unknown, already used, revoked or expired",
            )
        if existing is None:
            self._store.add_agent(
                AgentRecord(
                    agent_id=agent_id,
                    public_key=bytes(request.public_key),
                    host_name=request.host_name[:255],
                    os_type=request.host_os_type[:32],
                    group=group,
                    agent_version=request.agent_version[:64],
                    enrolled_at=now,
                )
            )
            last_seq, last_digest = 0, b""
        else:
            last_seq, last_digest = existing.last_seq, existing.last_digest
        log.info("enrolled agent %s (%s) into group %s", agent_id, request.host_name, group)
        return collector_pb2.EnrollResponse(
            agent_id=agent_id,
            host_group=group,
            last_seq=last_seq,
            last_digest=last_digest,
            client_cert_pem=cert,
            mtls_port=self.mtls_port if cert else 0,
        )

    def _rate_limit(self, context: grpc.ServicerContext) -> None:
        with self._limit_lock:
            wait = self._enroll_limit.take(peer_host(context.peer()), self._monotonic())
        if wait > 0:
            self._refuse("enroll_rate")
            _abort(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many enrollments from this address; retry in {wait:.0f} s",
                ((RETRY_PUSHBACK_METADATA, str(int(wait * 1000))),),
            )

    def _client_cert(
        self,
        request: collector_pb2.EnrollRequest,
        agent_id: str,
        now: datetime,
        context: grpc.ServicerContext,
    ) -> bytes:
        if not request.csr_pem or self._pki is None or not self._pki.ca_key_pem:
            return b""
        try:
            return issue_client_cert(
                self._pki.ca_pem, self._pki.ca_key_pem, request.csr_pem, agent_id, now
            )
        except CsrError as exc:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    # -- Publish -----------------------------------------------------------------------

    def Publish(
        self, request: collector_pb2.PublishRequest, context: grpc.ServicerContext
    ) -> collector_pb2.PublishResponse:
        envelopes = request.envelopes
        if len(envelopes) > MAX_BATCH:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"more than {MAX_BATCH} envelopes")
        remaining = context.time_remaining()
        if remaining is not None and remaining < MIN_REMAINING_S:
            self._metrics.shed(len(envelopes))
            _abort(
                context,
                grpc.StatusCode.UNAVAILABLE,
                f"the collector is busy: this request waited until {remaining:.1f} s were left",
                ((RETRY_PUSHBACK_METADATA, str(BUSY_RETRY_MS)),),
            )
        self._metrics.publish(len(envelopes))
        self._metrics.in_flight(1)
        try:
            with self._store_errors(context):
                return self._publish(request, context)
        finally:
            self._metrics.in_flight(-1)

    def _publish(
        self, request: collector_pb2.PublishRequest, context: grpc.ServicerContext
    ) -> collector_pb2.PublishResponse:
        key_id = self._key_id(request, context)
        if not request.envelopes:  # where do I stand: asked rarely, answered from the store
            agent = self._authenticate(key_id, context, fresh=True)
            return _position(agent.last_seq, agent.last_digest)
        try:
            return self._publish_batch(request.envelopes, key_id, context, fresh=False)
        except StaleAgentState:
            # Another process (a replica, a worker, an admin) moved this agent since we
            # last stored for it: nothing was written, so decide again on what is stored.
            return self._publish_batch(request.envelopes, key_id, context, fresh=True)

    def _publish_batch(
        self,
        envelopes: Sequence[Envelope],
        key_id: str,
        context: grpc.ServicerContext,
        *,
        fresh: bool,
    ) -> collector_pb2.PublishResponse:
        agent = self._authenticate(key_id, context, fresh=fresh)
        now = self._clock()
        batch = check_batch(
            agent,
            envelopes,
            lookups=Lookups(
                held=lambda seqs: self._store.held_digests(key_id, seqs),
                forks=lambda above: self._store.fork_digests(key_id, above_seq=above),
            ),
            now=now,
            trusted=lambda flat: _trusted_fields(flat, agent),
        )
        if batch.changed:
            try:
                self._store_batch(agent, batch, now)
            except ConcurrentUpdate:
                self._agents.forget(key_id)
                if fresh:
                    raise
                raise StaleAgentState(key_id) from None
        self._count(batch)
        response = _position(batch.state.last_seq, batch.state.last_digest)
        response.acked_seq = max(batch.acked_seq, batch.state.last_seq)
        response.accepted = len(batch.events)
        response.duplicates = batch.duplicates
        response.rejections.extend(batch.rejections)
        response.snapshot_requested = bool(batch.gaps or batch.refusals)
        return response

    @contextmanager
    def _store_errors(self, context: grpc.ServicerContext) -> Iterator[None]:
        """A store that lost a race or went away becomes a status the agent retries on; the
        agent keeps the envelopes, so nothing is lost."""
        try:
            yield
        except ConcurrentUpdate:
            _abort(context, grpc.StatusCode.ABORTED, "another replica advanced this agent")
        except DBAPIError as exc:
            log.warning("store unavailable: %s", exc.orig)
            self._metrics.store_error()
            _abort(
                context,
                grpc.StatusCode.UNAVAILABLE,
                "the collector's store is unavailable",
                ((RETRY_PUSHBACK_METADATA, str(STORE_RETRY_MS)),),
            )

    def _refuse(self, code: str, count: int = 1) -> None:
        self.counters.count(code, count=count)
        self._metrics.refused(code, count)

    def _count(self, batch: Batch) -> None:
        for code, (count, _, _) in batch.by_code.items():
            self._refuse(code, count)
        self.counters.count(accepted=len(batch.events))
        datasets = Counter(str(e.event.get("event.dataset", "")) for e in batch.events)
        self._metrics.accepted(datasets)
        self._metrics.duplicates(batch.duplicates)
        self._metrics.gaps(len(batch.gaps))

    def _key_id(self, request: collector_pb2.PublishRequest, context: grpc.ServicerContext) -> str:
        key_ids = {env.key_id for env in request.envelopes}
        if not request.envelopes:
            key_ids = {request.agent_id}
        if len(key_ids) != 1 or "" in key_ids:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "one agent's envelopes per request")
        (key_id,) = key_ids
        peer = _peer_common_name(context)
        if peer is None and self._require_client_cert:
            _abort(
                context,
                grpc.StatusCode.UNAUTHENTICATED,
                "a client certificate is required: enroll again to get one",
            )
        if peer is not None and peer != key_id:
            _abort(
                context, grpc.StatusCode.PERMISSION_DENIED, "client certificate names another agent"
            )
        return key_id

    def _authenticate(
        self, key_id: str, context: grpc.ServicerContext, *, fresh: bool
    ) -> AgentState:
        agent = self._agents.fresh(key_id) if fresh else self._agents.get(key_id)
        if agent is None:
            self._refuse("unknown_agent")
            _abort(context, grpc.StatusCode.UNAUTHENTICATED, f"unknown agent key {key_id[:64]!r}")
        if agent.revoked:
            self._refuse("revoked")
            _abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"agent {key_id} is revoked",
                ((REVOKED_METADATA, "1"),),
            )
        return agent

    def _store_batch(self, agent: AgentState, batch: Batch, now: datetime) -> None:
        rules, outcome = self._rules(), Outcome()
        agent_id = agent.record.agent_id
        started = self._monotonic()
        for event in batch.events:
            # The flat event is the dict batch.py built: matches tag it before it is stored.
            flat = cast(dict[str, object], event.event)
            evaluate_event(rules, flat, agent_id=agent_id, seq=event.seq, now=now, into=outcome)
        collector_events = self._notes(agent, batch, now)
        for note in collector_events:
            evaluate_event(
                rules, dict(note.fields), agent_id=agent_id, seq=0, now=now, into=outcome
            )
        self._metrics.rules_evaluated(self._monotonic() - started)
        window = _window(rules, outcome)
        tallies = self._store.ingest(
            agent_id=agent_id,
            expected_last_seq=agent.last_seq,
            last_seq=batch.state.last_seq,
            last_digest=batch.state.last_digest,
            events=batch.events,
            gaps=batch.gaps,
            alerts=outcome.alerts,
            now=now,
            refusals=batch.refusals,
            notes=collector_events,
            counts=batch.counts(),
            window=window,
        )
        moved = bool(batch.events) or batch.state.last_seq != agent.last_seq
        self._agents.stored(
            agent, batch.state.last_seq, batch.state.last_digest, now if moved else None
        )
        self._raised(outcome.alerts)
        self._forward_stored(
            [e.event for e in batch.events] + [n.fields for n in collector_events],
            outcome.alerts,
        )
        if tallies:
            self._raise_correlations(rules, tallies, window)

    def _raised(self, alerts: Sequence[NewAlert]) -> None:
        if alerts:
            self._metrics.alerts_raised(Counter(a.level for a in alerts))

    def _forward_stored(
        self, events: Sequence[Mapping[str, object]], alerts: Sequence[NewAlert]
    ) -> None:
        """Queue what was just committed for the SIEM; never fails the batch (the queue
        counts its own trouble)."""
        if self._forward is None:
            return
        self._forward.submit(
            events=events,
            alerts=[
                flat_alert(
                    rule_id=a.rule_id,
                    rule_title=a.rule_title,
                    level=a.level,
                    agent_id=a.agent_id,
                    host_name=a.host_name,
                    summary=a.summary,
                    event_seq=a.event_seq,
                    at=a.at,
                )
                for a in alerts
            ],
        )

    def _notes(self, agent: AgentState, batch: Batch, now: datetime) -> list[CollectorEvent]:
        found = [notes.for_gap(agent, gap.from_seq, gap.to_seq, now) for gap in batch.gaps]
        if batch.by_code:
            totals = self._store.delivery_counters(agent.record.agent_id).get(
                agent.record.agent_id, {}
            )
            found += notes.for_refusals(
                agent, batch.by_code, totals, accepted_now=bool(batch.events), now=now
            )
        return found

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
                self._raised(alerts)
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
        self._raised(outcome.alerts)
        self._forward_stored([event], outcome.alerts)
        self._correlate(rules, outcome)

    # -- silence -----------------------------------------------------------------------

    def report_silence(self, *, silent_after: float) -> int:
        """Raise a silence event for every agent quiet longer than `silent_after` seconds."""
        now = self._clock()
        rules = self._rules()
        reported = 0
        cutoff = datetime.fromtimestamp(now.timestamp() - silent_after, UTC)
        for agent_id, last_seen in self._store.silent_agents(seen_before=cutoff):
            agent = self._store.get_agent(agent_id)
            if agent is None:
                continue
            note, outcome = notes.for_silence(agent, last_seen, now), Outcome()
            evaluate_event(
                rules, dict(note.fields), agent_id=agent_id, seq=0, now=now, into=outcome
            )
            self._store.record_notes(agent_id, [note], outcome.alerts, {"silence": 1}, now)
            self._raised(outcome.alerts)
            self._correlate(rules, outcome)
            reported += 1
        return reported


def _position(last_seq: int, last_digest: bytes) -> collector_pb2.PublishResponse:
    return collector_pb2.PublishResponse(
        acked_seq=last_seq, last_seq=last_seq, last_digest=last_digest
    )


def _peer_common_name(context: grpc.ServicerContext) -> str | None:
    names = context.auth_context().get("x509_common_name") or []
    return names[0].decode("utf-8", "replace") if names else None


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
