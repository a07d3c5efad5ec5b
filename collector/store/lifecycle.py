"""Pure: what a match, a removal or an analyst does to an alert.

- A new match opens an alert with count 1.
- A match repeating the observation already counted (same fingerprint: a periodic snapshot
  of an unchanged file or process) changes nothing but `last_seen`: no count, no reopening.
- A changed observation counts once more, and reopens a resolved alert or one whose
  suppression has ended; an acknowledged or still-suppressed alert keeps its status.
- A removed model or a stopped process resolves its open or acknowledged alerts, with why;
  if it comes back, the next match reopens the alert whatever the fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from collector.store.records import NewAlert

STATUSES = ("open", "acknowledged", "resolved", "suppressed")
SYSTEM = "system"
# Fields that change while the observation does not: times, sequence, live counters.
_VOLATILE = frozenset(
    {
        "@timestamp",
        "agent.version",
        "event.action",
        "event.sequence",
        "ai.gpu.utilization",
        "ai.gpu.memory_bytes",
        "ai.classifier.score",
        "ai.classifier.top_features",
        "process.pid",
        "rule.id",
        "rule.name",
    }
)
_ENDS = {"removed": "model removed", "stopped": "process stopped"}


@dataclass(frozen=True)
class Current:
    """An alert row as stored."""

    id: int
    status: str
    count: int
    fingerprint: str | None
    suppressed_until: datetime | None
    reason: str = ""  # why it has its status (status_reason)


@dataclass(frozen=True)
class Transition:
    """Column values to set, and the status change to record (None: status unchanged)."""

    values: dict[str, object]
    status: str | None = None
    reason: str = ""


def subject_of(event: Mapping[str, object]) -> str:
    """What an alert on this event is about: the file, the program, the collector's reason,
    else the dataset."""
    return str(
        event.get("file.path")
        or event.get("process.executable")
        or event.get("event.reason")
        or event.get("event.dataset")
    )


def fingerprint_of(event: Mapping[str, object]) -> str:
    """A digest of what was observed, leaving out what changes when nothing did."""
    kept = {k: v for k, v in event.items() if k not in _VOLATILE}
    text = json.dumps(kept, sort_keys=True, default=str, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def end_reason(event: Mapping[str, object]) -> str | None:
    """Why this event resolves the alerts on its subject; None if it does not."""
    action = event.get("event.action")
    return _ENDS.get(action) if isinstance(action, str) else None


def on_match(current: Current | None, alert: NewAlert) -> Transition:
    """The change one match makes to its alert (`current` None: there is none yet)."""
    seen: dict[str, object] = {"last_seen": alert.at}
    if current is None:
        return Transition({**seen, "count": 1, "status": "open"}, "open", "rule matched")
    if current.status == "resolved" and current.reason in _ENDS.values():
        # Resolved because the file or process went away: a match means it is back.
        back = {**seen, "count": current.count + 1, "fingerprint": alert.fingerprint}
        return _reopen({**back, "event_seq": alert.event_seq}, alert.at, "it is back")
    if alert.fingerprint and alert.fingerprint == current.fingerprint:
        return Transition(seen)
    values: dict[str, object] = {
        **seen,
        "count": current.count + 1,
        "fingerprint": alert.fingerprint,
        "summary": alert.summary,
        "event_seq": alert.event_seq,
        "rule_title": alert.rule_title,
        "level": alert.level,
        "host_name": alert.host_name,
    }
    if current.status == "resolved":
        return _reopen(values, alert.at, "matched again: it changed")
    until = current.suppressed_until
    if current.status == "suppressed" and until is not None and until <= alert.at:
        return _reopen(values, alert.at, "suppression ended")
    return Transition(values)


def _reopen(values: dict[str, object], at: datetime, reason: str) -> Transition:
    change = {"status": "open", "status_by": SYSTEM, "status_at": at, "status_reason": reason}
    return Transition({**values, **change, "suppressed_until": None}, "open", reason)


def on_end(current: Current, reason: str) -> Transition | None:
    """A removal or stop resolves an open or acknowledged alert; others stay as they are."""
    if current.status not in ("open", "acknowledged"):
        return None
    return Transition({"status": "resolved"}, "resolved", reason)


def check_change(status: str, until: datetime | None, now: datetime) -> str | None:
    """Why an analyst's status change is refused, or None if it is fine."""
    if status not in STATUSES:
        return f"alert status {status!r} is not one of {', '.join(STATUSES)}"
    if status == "suppressed" and (until is None or until <= now):
        return "suppressed needs an until date in the future"
    if status != "suppressed" and until is not None:
        return "only suppressed takes an until date"
    return None
