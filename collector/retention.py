"""How long raw envelopes and decoded events are kept, and the batched deletes that apply it.

`cutoffs` is pure: a policy and `now` in, per table the time before which rows go. Envelopes
are what the chain check compares a resent envelope with (collector.chain): one is deleted
only once a replay of it would be refused as too old anyway (MAX_AGE_MS, plus the clock
skew an agent is allowed), and each agent's newest envelope stays whatever its age. Events
are never read by the chain check (the tip lives on the agent's row), so any age will do.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from collector.chain import MAX_AGE_MS, MAX_SKEW_MS
from collector.errors import CollectorError

# Rows per DELETE: each is its own short transaction, so ingest never waits long for one.
BATCH = 5000
# The shortest envelope retention that keeps replay detection whole: the chain's clock window.
MIN_ENVELOPE_DAYS = MAX_AGE_MS // (24 * 3600 * 1000)
_ENVELOPE_FLOOR = timedelta(milliseconds=MAX_AGE_MS + MAX_SKEW_MS)


@dataclass(frozen=True)
class Retention:
    """Days to keep each kind of row; 0 keeps them forever."""

    envelopes_days: int = 30
    events_days: int = 90

    def __post_init__(self) -> None:
        for name, days in (("envelopes", self.envelopes_days), ("events", self.events_days)):
            if days < 0:
                raise CollectorError(f"retention of {name}: {days} days is negative")
        if 0 < self.envelopes_days < MIN_ENVELOPE_DAYS:
            raise CollectorError(
                f"retention of envelopes: {self.envelopes_days} days is shorter than the "
                f"{MIN_ENVELOPE_DAYS} days within which a replayed envelope must still be "
                "recognised; use 0 (forever) or at least that"
            )


def cutoffs(policy: Retention, now: datetime) -> dict[str, datetime]:
    """Per table, rows received before this time may go; a table kept forever is absent."""
    found = {}
    if policy.envelopes_days:
        found["envelopes"] = now - max(timedelta(days=policy.envelopes_days), _ENVELOPE_FLOOR)
    if policy.events_days:
        found["events"] = now - timedelta(days=policy.events_days)
    return found


class Expiring(Protocol):
    def delete_expired(self, table: str, *, before: datetime, limit: int) -> int: ...


def expire(
    store: Expiring,
    before: Mapping[str, datetime],
    *,
    stop: threading.Event | None = None,
    batch: int = BATCH,
    pause: float = 0.05,
) -> dict[str, int]:
    """Delete in batches until nothing is older than the cutoffs, or `stop` is set; the
    rows deleted per table. The pause between batches lets ingest take the writer lock."""
    stop = stop or threading.Event()
    deleted = dict.fromkeys(before, 0)
    for table, cutoff in before.items():
        while not stop.is_set():
            count = store.delete_expired(table, before=cutoff, limit=batch)
            deleted[table] += count
            if count < batch or stop.wait(pause):
                break
    return deleted
