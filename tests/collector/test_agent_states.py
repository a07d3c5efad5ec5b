"""Agent positions kept in memory: read once, moved by stored writes, never kept revoked."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from collector.agent_states import AgentStates
from collector.store import AgentRecord, AgentState

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _state(agent_id: str, last_seq: int = 0, *, revoked: bool = False) -> AgentState:
    record = AgentRecord(agent_id, b"k" * 32, "lap", "linux", "g", "1.0", T0)
    return AgentState(record, last_seq, b"", revoked, None)


class FakeStore:
    def __init__(self, *states: AgentState) -> None:
        self.states = {s.record.agent_id: s for s in states}
        self.reads: list[str] = []

    def read(self, agent_id: str) -> AgentState | None:
        self.reads.append(agent_id)
        return self.states.get(agent_id)


def test_an_agent_is_read_once_then_served_from_memory() -> None:
    store = FakeStore(_state("a", 3))
    states = AgentStates(store.read)
    assert states.get("a") == states.get("a") == _state("a", 3)
    assert store.reads == ["a"]


def test_a_stored_write_moves_the_kept_position_and_last_seen() -> None:
    states = AgentStates(FakeStore(_state("a", 3)).read)
    agent = states.get("a")
    assert agent is not None
    states.stored(agent, 5, b"d5", T0)
    moved = states.get("a")
    assert moved is not None
    assert (moved.last_seq, moved.last_digest, moved.last_seen) == (5, b"d5", T0)


def test_an_older_write_finishing_late_does_not_move_the_position_back() -> None:
    states = AgentStates(FakeStore(_state("a", 3)).read)
    agent = states.get("a")
    assert agent is not None
    states.stored(agent, 7, b"d7", T0)
    states.stored(agent, 5, b"d5", T0)
    assert states.get("a") == replace(agent, last_seq=7, last_digest=b"d7", last_seen=T0)


def test_a_fresh_read_replaces_what_was_kept_even_when_the_store_is_behind() -> None:
    store = FakeStore(_state("a", 9))
    states = AgentStates(store.read)
    states.get("a")
    store.states["a"] = _state("a", 0)  # forgotten and enrolled again elsewhere
    assert states.fresh("a") == _state("a", 0)
    assert states.get("a") == _state("a", 0)
    assert store.reads == ["a", "a"]


def test_unknown_and_revoked_agents_are_not_kept() -> None:
    store = FakeStore(_state("r", 2, revoked=True))
    states = AgentStates(store.read)
    assert states.get("nobody") is None
    assert states.get("r") == _state("r", 2, revoked=True)
    states.get("r")
    assert store.reads == ["nobody", "r", "r"]
    assert len(states) == 0


def test_a_full_memory_lets_the_oldest_entry_go() -> None:
    store = FakeStore(*(_state(name) for name in "abc"))
    states = AgentStates(store.read, capacity=2)
    for name in "abc":
        states.get(name)
    assert len(states) == 2
    states.get("a")
    assert store.reads == ["a", "b", "c", "a"]


def test_forget_makes_the_next_get_read_the_store() -> None:
    store = FakeStore(_state("a"))
    states = AgentStates(store.read)
    states.get("a")
    states.forget("a")
    assert states.get("a") == _state("a")
    assert store.reads == ["a", "a"]


def test_a_capacity_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        AgentStates(FakeStore().read, capacity=0)
