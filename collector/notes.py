"""Pure: what the collector saw about an agent, as flat shadowai.collector events.

These events go through the same rules as the agents' own, so a security team writes
"alert on a cloned identity" the way it writes any other rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from collector.chain import CHAIN_CODES
from collector.store.delivery import CollectorEvent
from collector.store.records import AgentState

DATASET = "shadowai.collector"
# A chain refusal while the accepted chain moved this recently: two chains are alive at
# once under one key, which is what a cloned disk image or a copied data dir looks like.
CLONE_WINDOW = timedelta(minutes=10)
REASON_FOR_CODE = {
    "fork": "fork",
    "replay_mismatch": "replay_mismatch",
    "signature": "bad_signature",
    "clock": "clock_skew",
    "malformed": "malformed",
    "identity": "identity",
    "payload_type": "malformed",
    "payload_size": "malformed",
}


def base(agent: AgentState, reason: str, now: datetime) -> dict[str, object]:
    return {
        "@timestamp": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "event.dataset": DATASET,
        "event.action": "discovered",
        "event.reason": reason,
        "agent.id": agent.record.agent_id,
        "host.name": agent.record.host_name,
        "host.os.type": agent.record.os_type,
        "host.group": agent.record.group,
    }


def refusal_reason(code: str, agent: AgentState, *, accepted_now: bool, now: datetime) -> str:
    if code in CHAIN_CODES:
        recent = agent.last_seen is not None and now - agent.last_seen <= CLONE_WINDOW
        if accepted_now or recent:
            return "cloned_identity"
    return REASON_FOR_CODE.get(code, code)


def for_refusals(
    agent: AgentState,
    by_code: Mapping[str, tuple[int, list[int], str]],
    totals: Mapping[str, int],
    *,
    accepted_now: bool,
    now: datetime,
) -> list[CollectorEvent]:
    """One event per refusal code in a batch: code -> (count, seqs, first reason)."""
    notes = []
    for code, (count, seqs, reason_text) in sorted(by_code.items()):
        reason = refusal_reason(code, agent, accepted_now=accepted_now, now=now)
        fields = base(agent, reason, now)
        fields.update(
            {
                "message": reason_text,
                "shadowai.refusal.code": code,
                "shadowai.refusal.count": count,
                "shadowai.refusal.total": totals.get(f"refused.{code}", 0) + count,
                "shadowai.refusal.seqs": seqs[:20],
            }
        )
        notes.append(CollectorEvent(agent.record.agent_id, reason, now, fields))
    return notes


def for_gap(agent: AgentState, from_seq: int, to_seq: int, now: datetime) -> CollectorEvent:
    fields = base(agent, "gap", now)
    fields.update(
        {
            "shadowai.gap.from_seq": from_seq,
            "shadowai.gap.to_seq": to_seq,
            "shadowai.gap.missing": to_seq - from_seq + 1,
        }
    )
    return CollectorEvent(agent.record.agent_id, "gap", now, fields)


def for_silence(agent: AgentState, last_seen: datetime, now: datetime) -> CollectorEvent:
    fields = base(agent, "silence", now)
    fields.update(
        {
            "shadowai.silence.seconds": int((now - last_seen).total_seconds()),
            "shadowai.silence.last_seen": last_seen.isoformat(),
        }
    )
    return CollectorEvent(agent.record.agent_id, "silence", now, fields)
