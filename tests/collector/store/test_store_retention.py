"""Retention on both stores: batched deletes by age, each agent's newest envelope kept."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from collector.retention import Retention, cutoffs, expire
from collector.store import AgentRecord, Store, StoredEvent

START = datetime(2026, 1, 1, tzinfo=UTC)


def _agent(store: Store, agent_id: str, received: list[datetime]) -> None:
    """An agent whose envelopes 1..n arrived at the given times, one batch each."""
    store.add_agent(AgentRecord(agent_id, b"k" * 32, agent_id, "linux", "g", "1", START))
    for seq, at in enumerate(received, start=1):
        event = {"event.dataset": "shadowai.agent_health", "event.action": "snapshot"}
        store.ingest(
            agent_id=agent_id,
            expected_last_seq=seq - 1,
            last_seq=seq,
            last_digest=b"d%d" % seq,
            events=[StoredEvent(seq, b"d%d" % seq, b"env", at, event)],
            gaps=[],
            alerts=[],
            now=at,
        )


def _seqs(store: Store, agent_id: str) -> tuple[list[int], list[int]]:
    envelopes = sorted(store.held_digests(agent_id, range(1, 200)))
    events = sorted(int(str(e["seq"])) for e in store.list_events(limit=1000))
    return envelopes, events


def test_rows_older_than_the_cutoff_go_and_newer_ones_stay(store: Store) -> None:
    days = [START + timedelta(days=d) for d in range(0, 120, 10)]  # seq 1..12, 10 days apart
    _agent(store, "a", days)
    now = START + timedelta(days=115)  # clock injected: 115 days after the first
    deleted = expire(store, cutoffs(Retention(envelopes_days=30, events_days=90), now))
    kept_envelopes, kept_events = _seqs(store, "a")
    assert kept_envelopes == [10, 11, 12]  # received on days 90, 100, 110
    assert kept_events == [4, 5, 6, 7, 8, 9, 10, 11, 12]  # day 30 onwards
    assert deleted == {"envelopes": 9, "events": 3}


def test_each_agents_newest_envelope_stays_however_old(store: Store) -> None:
    _agent(store, "quiet", [START, START + timedelta(days=1)])
    _agent(store, "busy", [START, START + timedelta(days=200)])
    now = START + timedelta(days=400)
    expire(store, cutoffs(Retention(envelopes_days=30, events_days=30), now))
    assert _seqs(store, "quiet")[0] == [2]  # the tip a resent batch is matched against
    assert _seqs(store, "busy")[0] == [2]
    assert store.list_events() == []  # events: the tip lives on the agent row
    agent = store.get_agent("quiet")
    assert agent is not None and (agent.last_seq, agent.last_digest) == (2, b"d2")


def test_deletes_go_in_batches_until_done(store: Store) -> None:
    _agent(store, "a", [START + timedelta(minutes=m) for m in range(25)])
    calls: list[int] = []

    class Counting:
        def delete_expired(self, table: str, *, before: datetime, limit: int) -> int:
            deleted = store.delete_expired(table, before=before, limit=limit)
            calls.append(deleted)
            return deleted

    before = {"events": START + timedelta(days=1)}
    assert expire(Counting(), before, batch=10, pause=0) == {"events": 25}
    assert calls == [10, 10, 5]


def test_a_set_stop_event_ends_the_work_between_batches(store: Store) -> None:
    _agent(store, "a", [START + timedelta(minutes=m) for m in range(25)])
    stop = threading.Event()
    stop.set()
    assert expire(store, {"events": START + timedelta(days=1)}, stop=stop) == {"events": 0}
    assert len(store.list_events(limit=100)) == 25


def test_only_envelopes_and_events_have_retention(store: Store) -> None:
    with pytest.raises(ValueError, match="no retention for table 'alerts'"):
        store.delete_expired("alerts", before=START, limit=10)
