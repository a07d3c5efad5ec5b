"""Check one Publish batch: verify each envelope, place it on the chain, decide its fate.

Every envelope of the batch ends as accepted, duplicate or refused for good; refusals do
not stop the batch, so one bad envelope never holds back the ones behind it. The store is
only asked about digests when an envelope sits at or below the chain's tip, or jumps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf.message import DecodeError

from collector.chain import CHAIN_CODES, CONTENT_CODES, ChainState, Known, Link, check_link
from collector.errors import RefusedEnvelope
from collector.store import AgentState, Gap, StoredEvent
from collector.store.delivery import Refusal
from wire import envelope
from wire.events import flatten_payload
from wire.v1 import collector_pb2
from wire.v1.events_pb2 import Envelope, Payload

log = logging.getLogger(__name__)


@dataclass
class Batch:
    state: ChainState
    events: list[StoredEvent] = field(default_factory=list)
    late: int = 0
    duplicates: int = 0
    gaps: list[Gap] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    rejections: list[collector_pb2.Rejection] = field(default_factory=list)
    acked_seq: int = 0
    # code -> (count, seqs, first reason)
    by_code: dict[str, tuple[int, list[int], str]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.events or self.gaps or self.refusals)

    def counts(self) -> dict[str, int]:
        counts = {f"refused.{code}": n for code, (n, _, _) in self.by_code.items()}
        counts.update(gaps=len(self.gaps), duplicates=self.duplicates, late=self.late)
        if self.gaps or self.refusals:
            counts["snapshot_requests"] = 1
        return counts


@dataclass(frozen=True)
class Lookups:
    """The store's answers, asked only when an envelope needs them."""

    held: Callable[[Sequence[int]], dict[int, bytes]]
    forks: Callable[[int], set[bytes]]


def check_batch(
    agent: AgentState,
    envelopes: Sequence[Envelope],
    *,
    lookups: Lookups,
    now: datetime,
    trusted: Callable[[dict[str, Any]], dict[str, Any]],
) -> Batch:
    public_key = Ed25519PublicKey.from_public_bytes(agent.record.public_key)
    batch = Batch(state=ChainState(agent.last_seq, agent.last_digest))
    now_ms = int(now.timestamp() * 1000)
    opened = [_open(env, public_key) for env in envelopes]
    known = _known(agent, opened, lookups)
    for index, (env, item) in enumerate(zip(envelopes, opened, strict=True)):
        if isinstance(item, RefusedEnvelope):
            _refuse(batch, agent, index, env, item, seq=0, now=now)
            continue
        payload, digest = item
        batch.acked_seq = max(batch.acked_seq, payload.seq)
        if payload.seq > batch.state.last_seq + 1 and not known.forks:
            known = Known(known.held, lookups.forks(agent.last_seq))
        try:
            link = check_link(
                payload,
                digest=digest,
                agent_id=agent.record.agent_id,
                state=batch.state,
                now_ms=now_ms,
                known=known,
            )
        except RefusedEnvelope as refusal:
            _refuse(batch, agent, index, env, refusal, seq=payload.seq, now=now, digest=digest)
            if refusal.link is not None and refusal.code in CONTENT_CODES:
                _advance(batch, agent, refusal.link, now)
            elif refusal.code in CHAIN_CODES:
                known = Known(known.held, {*known.forks, digest})
            continue
        if link.duplicate:
            batch.duplicates += 1
            continue
        _advance(batch, agent, link, now)
        batch.late += link.late
        known = Known({**known.held, payload.seq: digest}, known.forks)
        flat = trusted(flatten_payload(payload))
        batch.events.append(StoredEvent(payload.seq, digest, env.SerializeToString(), now, flat))
    return batch


def _advance(batch: Batch, agent: AgentState, link: Link, now: datetime) -> None:
    if link.late:
        return
    batch.state = link.state
    if link.gap is not None:
        batch.gaps.append(Gap(agent.record.agent_id, *link.gap, at=now))


def _known(
    agent: AgentState, opened: Sequence[tuple[Payload, bytes] | RefusedEnvelope], lookups: Lookups
) -> Known:
    """Digests the collector holds at and just below every seq of the batch under the tip."""
    below = [item[0].seq for item in opened if isinstance(item, tuple)]
    below = [seq for seq in below if seq <= agent.last_seq]
    if not below:
        return Known({})
    return Known(lookups.held([*below, *(seq - 1 for seq in below if seq > 1)]))


def _refuse(
    batch: Batch,
    agent: AgentState,
    index: int,
    env: Envelope,
    refusal: RefusedEnvelope,
    *,
    seq: int,
    now: datetime,
    digest: bytes = b"",
) -> None:
    log.warning("refused envelope %d from %s: %s", index, agent.record.agent_id, refusal)
    batch.rejections.append(
        collector_pb2.Rejection(seq=seq, reason=str(refusal), code=refusal.code, index=index)
    )
    raw = env.SerializeToString()
    batch.refusals.append(
        Refusal(
            agent.record.agent_id,
            seq,
            refusal.code,
            refusal.reason,
            digest or envelope.digest(env),
            raw,
            now,
        )
    )
    count, seqs, first = batch.by_code.get(refusal.code, (0, [], str(refusal)))
    batch.by_code[refusal.code] = (count + 1, [*seqs, seq], first)


def _open(env: Envelope, public_key: Ed25519PublicKey) -> tuple[Payload, bytes] | RefusedEnvelope:
    """The verified payload and its digest, or the refusal; verify before parsing."""
    try:
        data = envelope.verify(env, public_key)
    except envelope.EnvelopeError as exc:
        return RefusedEnvelope(exc.code, exc.reason)
    payload = Payload()
    try:
        payload.ParseFromString(data)
    except DecodeError as exc:
        return RefusedEnvelope("malformed", f"payload: {exc}")
    return payload, envelope.digest(env)
