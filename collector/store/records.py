"""Plain values that cross the store's boundary: what callers pass in and get back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class AgentRecord:
    """An enrolled agent as bound at enrollment; never changed by its events."""

    agent_id: str
    public_key: bytes
    host_name: str
    os_type: str
    group: str
    agent_version: str
    enrolled_at: datetime


@dataclass(frozen=True)
class AgentState:
    """An agent with where its hash chain stands."""

    record: AgentRecord
    last_seq: int
    last_digest: bytes
    revoked: bool
    last_seen: datetime | None


@dataclass(frozen=True)
class StoredEvent:
    """One verified envelope and its decoded, flat event (DESIGN.md field names)."""

    seq: int
    digest: bytes
    envelope: bytes
    received_at: datetime
    event: Mapping[str, object]


@dataclass(frozen=True)
class NewAlert:
    """A rule match; alerts with the same dedup_key are one alert with a count."""

    rule_id: str
    rule_title: str
    level: str
    agent_id: str
    host_name: str
    dedup_key: str
    event_seq: int
    summary: str
    at: datetime
    subject: str = ""  # what the alert is about: resolved when it is removed or stops
    fingerprint: str = ""  # the observation; an unchanged one does not count again


@dataclass(frozen=True)
class Gap:
    """Sequence numbers an agent skipped (from_seq..to_seq inclusive)."""

    agent_id: str
    from_seq: int
    to_seq: int
    at: datetime
