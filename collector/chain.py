"""Pure checks of one verified payload against its agent's hash chain and the clock."""

from __future__ import annotations

from dataclasses import dataclass

from collector.errors import RefusedEnvelope
from wire.events import ACTIONS
from wire.v1.events_pb2 import Payload

MAX_SKEW_MS = 5 * 60 * 1000
# Agents spool while the collector is away, so old events are normal; this bounds replays
# of ancient envelopes after a chain reset.
MAX_AGE_MS = 30 * 24 * 3600 * 1000


@dataclass(frozen=True)
class ChainState:
    last_seq: int
    last_digest: bytes


@dataclass(frozen=True)
class Link:
    """What accepting one payload does to the chain: the new state and any gap it jumps."""

    state: ChainState
    gap: tuple[int, int] | None


def check_link(
    payload: Payload,
    *,
    digest: bytes,
    agent_id: str,
    state: ChainState,
    now_ms: int,
    max_skew_ms: int = MAX_SKEW_MS,
    max_age_ms: int = MAX_AGE_MS,
) -> Link:
    """Accept the payload as the next link, or raise RefusedEnvelope naming the check."""
    if payload.agent_id != agent_id:
        raise RefusedEnvelope("identity", f"payload names agent {payload.agent_id!r}")
    if payload.seq <= state.last_seq:
        raise RefusedEnvelope(
            "replay", f"seq {payload.seq} already used (last accepted {state.last_seq})"
        )
    if payload.created_ms > now_ms + max_skew_ms:
        raise RefusedEnvelope("clock", f"created {payload.created_ms - now_ms} ms in the future")
    if payload.created_ms < now_ms - max_age_ms:
        raise RefusedEnvelope("clock", f"created {now_ms - payload.created_ms} ms ago")
    _check_event(payload)
    gap = None
    if payload.seq == state.last_seq + 1:
        if payload.prev_digest != state.last_digest:
            raise RefusedEnvelope(
                "fork", f"seq {payload.seq} does not chain to the envelope we hold"
            )
    else:
        gap = (state.last_seq + 1, payload.seq - 1)
    return Link(ChainState(payload.seq, digest), gap)


def _check_event(payload: Payload) -> None:
    if not payload.HasField("event") or payload.event.WhichOneof("body") is None:
        raise RefusedEnvelope("malformed", f"seq {payload.seq} carries no event")
    if payload.event.action not in ACTIONS:
        raise RefusedEnvelope("malformed", f"unknown event.action {payload.event.action!r}")
