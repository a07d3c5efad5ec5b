"""Agents: enrollment records, chain state, revocation, and times kept in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.exc import StatementError

from collector.errors import CollectorError
from collector.store import AgentRecord, Store

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def record(agent_id: str = "agent-1", enrolled_at: datetime = NOW) -> AgentRecord:
    return AgentRecord(agent_id, b"\x07" * 32, "laptop", "darwin", "ml", "0.1.0", enrolled_at)


def test_added_agent_reads_back_with_an_empty_chain(store: Store) -> None:
    store.add_agent(record())
    state = store.get_agent("agent-1")
    assert state is not None
    assert state.record == record()
    assert (state.last_seq, state.last_digest, state.revoked, state.last_seen) == (
        0,
        b"",
        False,
        None,
    )


def test_times_come_back_as_the_same_instant_in_utc(store: Store) -> None:
    tokyo = datetime(2025, 3, 1, 21, 0, tzinfo=timezone(timedelta(hours=9)))
    store.add_agent(record(enrolled_at=tokyo))
    state = store.get_agent("agent-1")
    assert state is not None
    assert state.record.enrolled_at == tokyo
    assert state.record.enrolled_at.tzinfo == UTC
    assert state.record.enrolled_at.hour == 12


def test_naive_times_are_refused(store: Store) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        store.add_agent(record(enrolled_at=datetime(2025, 3, 1, 12, 0)))


def test_unknown_agent_is_none(store: Store) -> None:
    assert store.get_agent("nobody") is None


def test_agents_list_in_enrollment_order(store: Store) -> None:
    store.add_agent(record("later", NOW + timedelta(hours=1)))
    store.add_agent(record("earlier", NOW))
    assert [a.record.agent_id for a in store.list_agents()] == ["earlier", "later"]


def test_enrolling_twice_is_an_error(store: Store) -> None:
    store.add_agent(record())
    with pytest.raises(CollectorError, match="agent agent-1 is already enrolled"):
        store.add_agent(record())


def test_revoked_agent_stays_listed_as_revoked(store: Store) -> None:
    store.add_agent(record())
    assert store.revoke_agent("agent-1") is True
    state = store.get_agent("agent-1")
    assert state is not None and state.revoked
    assert store.revoke_agent("nobody") is False


def test_enrolled_agent_appears_as_a_host_not_yet_seen(store: Store) -> None:
    store.add_agent(record())
    assert store.list_hosts() == [
        {
            "agent_id": "agent-1",
            "host.name": "laptop",
            "host.os.type": "darwin",
            "host.group": "ml",
            "agent.version": "0.1.0",
            "last_seen": None,
            "model_count": 0,
            "open_alerts": 0,
        }
    ]
