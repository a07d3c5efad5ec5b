"""Where each agent's chain stood after this process last stored for it: saves a database
read on every Publish. Store.ingest's compare-and-set keeps it honest: an entry another
process or an admin has since outdated costs one refused write, then a fresh read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from collector.store import AgentState

# An entry is an agent's record and position: about 1 KB, so 100,000 agents hold ~100 MB.
DEFAULT_CAPACITY = 100_000


class AgentStates:
    """Agent states by agent id, read through `read` when missing; revoked ones never kept."""

    def __init__(
        self, read: Callable[[str], AgentState | None], capacity: int = DEFAULT_CAPACITY
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._read = read
        self._capacity = capacity
        self._states: dict[str, AgentState] = {}
        self._lock = threading.Lock()

    def get(self, agent_id: str) -> AgentState | None:
        """The agent's state as last kept (maybe out of date), else as the store has it."""
        with self._lock:
            kept = self._states.get(agent_id)
        return kept if kept is not None else self.fresh(agent_id)

    def fresh(self, agent_id: str) -> AgentState | None:
        """Read from the store, and keep what was read."""
        state = self._read(agent_id)
        if state is None or state.revoked:
            self.forget(agent_id)
        else:
            self._keep(state, newer_only=False)
        return state

    def stored(
        self, agent: AgentState, last_seq: int, last_digest: bytes, seen: datetime | None
    ) -> None:
        """The chain moved to (`last_seq`, `last_digest`) in a committed write."""
        last_seen = agent.last_seen if seen is None else seen
        moved = replace(agent, last_seq=last_seq, last_digest=last_digest, last_seen=last_seen)
        self._keep(moved, newer_only=True)

    def forget(self, agent_id: str) -> None:
        with self._lock:
            self._states.pop(agent_id, None)

    def __len__(self) -> int:
        return len(self._states)

    def _keep(self, state: AgentState, *, newer_only: bool) -> None:
        agent_id = state.record.agent_id
        with self._lock:
            kept = self._states.get(agent_id)
            # Two threads storing for one agent may finish out of order: keep the further.
            if newer_only and kept is not None and kept.last_seq > state.last_seq:
                return
            if kept is None and len(self._states) >= self._capacity:
                # The oldest entry by insertion: a quiet agent's, or one re-read since.
                del self._states[next(iter(self._states))]
            self._states[agent_id] = state
