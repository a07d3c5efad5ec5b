"""Pure checks of one verified payload against its agent's hash chain and the clock.

The collector's state for an agent is the tip of its chain (last seq and digest). A payload
at or below the tip is a duplicate only when the collector holds that very digest; a
different digest there is a second chain under the same key. Refusals for content (clock,
malformed) still move the tip, because the envelope is a genuine, well-chained link: the
events behind it must keep chaining. Refusals for the chain itself (fork) never move it.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass

from collector.errors import RefusedEnvelope
from wire.events import ACTIONS
from wire.v1.events_pb2 import Payload

MAX_SKEW_MS = 5 * 60 * 1000
# Agents spool while the collector is away, so old events are normal; this bounds replays
# of ancient envelopes after a chain reset.
MAX_AGE_MS = 30 * 24 * 3600 * 1000
# Codes that say the envelope sits on another chain than the one the collector holds.
CHAIN_CODES = frozenset({"fork", "replay_mismatch"})
# Codes for a well-chained envelope whose content is refused: the chain moves past it.
CONTENT_CODES = frozenset({"clock", "malformed"})


@dataclass(frozen=True)
class ChainState:
    last_seq: int
    last_digest: bytes


@dataclass(frozen=True)
class Link:
    """What accepting one payload does to the chain.

    `duplicate`: already stored with this digest (ack it, store nothing);
    `late`: fills a seq below the tip that the collector never received (reordering).
    """

    state: ChainState
    gap: tuple[int, int] | None
    duplicate: bool = False
    late: bool = False


@dataclass(frozen=True)
class Known:
    """What the collector holds around a payload: digests stored at seqs up to the tip,
    and digests of envelopes it refused as forks (whose descendants are forks too)."""

    held: Mapping[int, bytes]
    forks: Set[bytes] = frozenset()


NOTHING_KNOWN = Known({})


def check_link(
    payload: Payload,
    *,
    digest: bytes,
    agent_id: str,
    state: ChainState,
    now_ms: int,
    known: Known = NOTHING_KNOWN,
    max_skew_ms: int = MAX_SKEW_MS,
    max_age_ms: int = MAX_AGE_MS,
) -> Link:
    """Accept the payload as a link, or raise RefusedEnvelope naming the check."""
    if payload.agent_id != agent_id:
        raise RefusedEnvelope("identity", f"payload names agent {payload.agent_id!r}")
    if payload.seq == 0:
        raise RefusedEnvelope("malformed", "seq 0 is never issued")
    if payload.seq <= state.last_seq:
        return _below_tip(payload, digest, state, now_ms, known, max_skew_ms, max_age_ms)
    if payload.prev_digest in known.forks:
        raise RefusedEnvelope("fork", f"seq {payload.seq} descends from a refused fork")
    if payload.seq == state.last_seq + 1 and payload.prev_digest != state.last_digest:
        raise RefusedEnvelope("fork", f"seq {payload.seq} does not chain to the envelope we hold")
    gap = None if payload.seq == state.last_seq + 1 else (state.last_seq + 1, payload.seq - 1)
    link = Link(ChainState(payload.seq, digest), gap)
    try:
        check_content(payload, now_ms, max_skew_ms, max_age_ms)
    except RefusedEnvelope as refusal:
        refusal.link = link  # the content is refused, the link still counts
        raise
    return link


def _below_tip(
    payload: Payload,
    digest: bytes,
    state: ChainState,
    now_ms: int,
    known: Known,
    max_skew_ms: int,
    max_age_ms: int,
) -> Link:
    held = known.held.get(payload.seq)
    if held == digest:
        return Link(state, None, duplicate=True)
    if held is not None:
        raise RefusedEnvelope(
            "replay_mismatch",
            f"seq {payload.seq} is already held with another digest (last {state.last_seq})",
        )
    before = known.held.get(payload.seq - 1)
    if before is not None and payload.prev_digest != before:
        raise RefusedEnvelope("fork", f"late seq {payload.seq} does not chain to seq before it")
    check_content(payload, now_ms, max_skew_ms, max_age_ms)
    return Link(state, None, late=True)


def check_content(payload: Payload, now_ms: int, max_skew_ms: int, max_age_ms: int) -> None:
    if payload.created_ms > now_ms + max_skew_ms:
        raise RefusedEnvelope("clock", f"created {payload.created_ms - now_ms} ms in the future")
    if payload.created_ms < now_ms - max_age_ms:
        raise RefusedEnvelope("clock", f"created {now_ms - payload.created_ms} ms ago")
    if not payload.HasField("event") or payload.event.WhichOneof("body") is None:
        raise RefusedEnvelope("malformed", f"seq {payload.seq} carries no event")
    if payload.event.action not in ACTIONS:
        raise RefusedEnvelope("malformed", f"unknown event.action {payload.event.action!r}")
