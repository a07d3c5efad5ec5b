"""An overloaded collector drops requests whose callers gave up, before verifying anything."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, NoReturn

import grpc
import pytest

from bench.fleet_agent import SimAgent
from collector.governance import RuleSet
from collector.metrics import NO_METRICS
from collector.service import MIN_REMAINING_S, CollectorService
from collector.store import AgentRecord, Store
from wire import RETRY_PUSHBACK_METADATA
from wire.envelope import raw_public_key
from wire.v1 import collector_pb2


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code


class Context:
    """The ServicerContext calls Publish makes, with the deadline left to the caller."""

    def __init__(self, remaining: float | None) -> None:
        self.remaining = remaining
        self.trailers: tuple[tuple[str, str], ...] = ()

    def time_remaining(self) -> float | None:
        return self.remaining

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def set_trailing_metadata(self, trailers: Any) -> None:
        self.trailers = tuple(trailers)

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise Aborted(code, details)


class Shed:
    def __init__(self) -> None:
        self.count = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(NO_METRICS, name)

    def shed(self, count: int) -> None:
        self.count += count


def test_a_request_that_waited_past_its_deadline_is_dropped_unverified(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    agent = SimAgent(1, random.Random(1))
    record = AgentRecord(
        agent.agent_id,
        raw_public_key(agent.key.public_key()),
        "sim",
        "linux",
        "g",
        "1",
        datetime.now(UTC),
    )
    store.add_agent(record)
    metrics = Shed()
    service = CollectorService(store=store, rules=lambda: RuleSet(()), metrics=metrics)
    agent.append(agent.snapshot())
    request = collector_pb2.PublishRequest(envelopes=[p.envelope for p in agent.pending])

    late = Context(remaining=MIN_REMAINING_S / 2)
    with pytest.raises(Aborted) as aborted:
        service.Publish(request, late)
    assert aborted.value.code == grpc.StatusCode.UNAVAILABLE
    assert dict(late.trailers)[RETRY_PUSHBACK_METADATA].isdigit()
    assert metrics.count == len(agent.pending)
    state = store.get_agent(agent.agent_id)
    assert state is not None and state.last_seq == 0, "nothing was stored"

    for remaining in (None, 30.0):  # no deadline, or time enough: stored as usual
        reply = service.Publish(request, Context(remaining))
    assert reply.acked_seq == len(agent.pending)
    store.close()
