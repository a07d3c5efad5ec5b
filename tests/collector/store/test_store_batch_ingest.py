"""A batch that touches the same row several times ends as ingesting its events one by one.

Ingest writes each table once per batch, netting repeated keys first; these tests hold
that to the one-by-one result, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.exc import StatementError

from collector.paging import Listing
from collector.store import AgentRecord, NewAlert, Store, StoredEvent

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MODEL_ACTIONS = ("discovered", "changed", "snapshot", "removed", "bogus")
PROCESS_ACTIONS = ("started", "changed", "snapshot", "stopped")
ALERT_STATES = ("resolved", "acknowledged", "open")
_agents = itertools.count()


class Target(Protocol):
    url: str
    schema: str | None


@pytest.fixture
def other_store(store_target: Target, tmp_path: Path) -> Iterator[Store]:
    """A second, separate database of the same kind as `store`."""
    if store_target.schema is None:
        opened = Store.open(f"sqlite:///{tmp_path / 'one-by-one.db'}")
        yield opened
        opened.close()
        return
    schema = f"{store_target.schema}_one"
    opened = Store.open(store_target.url, schema=schema)
    try:
        yield opened
    finally:
        opened.close()
        engine = create_engine(store_target.url)
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@dataclass(frozen=True)
class Step:
    """One event and the alerts it raised."""

    event: dict[str, object]
    alerts: tuple[NewAlert, ...]
    at: datetime


def enroll(*stores: Store) -> str:
    agent_id = f"agent-{next(_agents)}"
    for store in stores:
        store.add_agent(AgentRecord(agent_id, b"\x01" * 32, "mbp", "darwin", "ml", "0.1", T0))
    return agent_id


def ship(store: Store, agent_id: str, first_seq: int, steps: Sequence[Step]) -> None:
    """All steps in one ingest, stamped with the last step's time as the service would."""
    events = [
        StoredEvent(seq, b"d%d" % seq, b"env", step.at, step.event)
        for seq, step in enumerate(steps, start=first_seq)
    ]
    store.ingest(
        agent_id=agent_id,
        expected_last_seq=first_seq - 1,
        last_seq=first_seq + len(steps) - 1,
        last_digest=b"d%d" % (first_seq + len(steps) - 1),
        events=events,
        gaps=[],
        alerts=[a for step in steps for a in step.alerts],
        now=steps[-1].at,
    )


def ship_one_by_one(store: Store, agent_id: str, first_seq: int, steps: Sequence[Step]) -> None:
    for seq, step in enumerate(steps, start=first_seq):
        ship(store, agent_id, seq, [step])


def snapshot(store: Store, agent_id: str) -> dict[str, object]:
    """Everything the store shows about one agent; ids differ where PostgreSQL skipped some."""

    def mine(items: list[dict[str, object]]) -> list[dict[str, object]]:
        return [
            {k: v for k, v in item.items() if k != "id"}
            for item in items
            if item["agent_id"] == agent_id
        ]

    digests = store.digests_page(Listing(limit=1000, sort="sha256")).items
    return {
        "agent": store.get_agent(agent_id),
        # Fleet-wide, and both stores saw the same agents: first/last seen are only as
        # precise as a batch, so the counts are compared.
        "digests": [(d["sha256"], d["hosts"], d["files"]) for d in digests],
        "models": mine(store.list_models(include_removed=True)),
        "processes": mine(store.list_processes(include_stopped=True)),
        "alerts": mine(store.list_alerts()),
        "hosts": mine(store.list_hosts()),
        "events": mine(store.list_events(limit=10_000)),
    }


def model(action: str, path: str, size: int, at: datetime, *alerts: NewAlert) -> Step:
    event: dict[str, object] = {
        "event.dataset": "shadowai.model_file",
        "event.action": action,
        "file.path": path,
        "file.size": size,
        "file.hash.sha256": f"{size % 3:064x}",  # digests shared across paths and agents
    }
    return Step(event, alerts, at)


def pickle_alert(agent_id: str, key: str, summary: str, at: datetime, seq: int) -> NewAlert:
    return NewAlert("r-pickle", "Pickle", "high", agent_id, "mbp", key, seq, summary, at)


def test_file_discovered_changed_removed_and_alert_twice_in_one_batch(
    store: Store, other_store: Store
) -> None:
    agent_id = enroll(store, other_store)
    t = [T0 + timedelta(minutes=i) for i in range(6)]
    steps = [
        model("discovered", "/m/a.gguf", 1, t[0], pickle_alert(agent_id, "k", "first", t[0], 1)),
        model("changed", "/m/a.gguf", 2, t[1]),
        model("removed", "/m/a.gguf", 3, t[2], pickle_alert(agent_id, "k", "second", t[2], 3)),
        model("removed", "/m/a.gguf", 4, t[3]),
        model("removed", "/m/b.gguf", 5, t[4]),  # never seen: nothing to end
        model("snapshot", "/m/c.gguf", 6, t[5]),
    ]
    ship(store, agent_id, 1, steps)
    ship_one_by_one(other_store, agent_id, 1, steps)

    assert snapshot(store, agent_id) == snapshot(other_store, agent_id)
    a, c = store.list_models(include_removed=True)
    assert (a["file.path"], a["file.size"]) == ("/m/a.gguf", 2)
    assert (a["first_seen"], a["last_seen"], a["removed_at"]) == (
        t[0].isoformat(),
        t[2].isoformat(),
        t[2].isoformat(),
    )
    assert (c["file.path"], c["removed_at"]) == ("/m/c.gguf", None)
    (alert,) = store.list_alerts()
    assert (alert["count"], alert["summary"], alert["event_seq"]) == (2, "second", 3)
    assert (alert["first_seen"], alert["last_seen"]) == (t[0].isoformat(), t[2].isoformat())


def test_batch_reopens_ends_and_counts_rows_from_earlier_batches(
    store: Store, other_store: Store
) -> None:
    agent_id = enroll(store, other_store)
    t = [T0 + timedelta(minutes=i) for i in range(8)]
    before = [
        model("discovered", "/m/a.gguf", 1, t[0], pickle_alert(agent_id, "k", "old", t[0], 1)),
        model("discovered", "/m/b.gguf", 1, t[0]),
    ]
    for target in (store, other_store):
        ship(target, agent_id, 1, before)
        (alert,) = target.list_alerts()
        target.set_alert_status(int(str(alert["id"])), "resolved", now=t[0])
    steps = [
        model("removed", "/m/a.gguf", 0, t[1]),
        model("snapshot", "/m/a.gguf", 7, t[2], pickle_alert(agent_id, "k", "new", t[2], 4)),
        model("removed", "/m/b.gguf", 0, t[3]),
        model("removed", "/m/b.gguf", 0, t[4], pickle_alert(agent_id, "k", "newer", t[4], 6)),
    ]
    ship(store, agent_id, 3, steps)
    ship_one_by_one(other_store, agent_id, 3, steps)

    assert snapshot(store, agent_id) == snapshot(other_store, agent_id)
    a, b = store.list_models(include_removed=True)
    assert (a["first_seen"], a["removed_at"], a["file.size"]) == (t[0].isoformat(), None, 7)
    assert (b["removed_at"], b["last_seen"]) == (t[3].isoformat(), t[3].isoformat())
    assert [(x["status"], x["count"], x["summary"]) for x in store.list_alerts()] == [
        ("open", 3, "newer")
    ]


def test_a_naive_event_time_is_refused_and_nothing_is_stored(store: Store) -> None:
    agent_id = enroll(store)
    naive = StoredEvent(1, b"d1", b"env", datetime(2025, 3, 1, 12, 0), {"event.action": "x"})
    with pytest.raises(StatementError, match="naive datetime"):
        store.ingest(
            agent_id=agent_id,
            expected_last_seq=0,
            last_seq=1,
            last_digest=b"d1",
            events=[naive],
            gaps=[],
            alerts=[],
            now=T0,
        )
    state = store.get_agent(agent_id)
    assert state is not None and state.last_seq == 0
    assert store.list_events() == []


@st.composite
def steps(draw: st.DrawFn, agent_id: str) -> list[Step]:
    """Events over three model paths and three processes, each with up to two alerts over
    three dedup keys; every two steps share a minute, so that some times are equal."""
    count = draw(st.integers(1, 12))
    out = []
    for i in range(count):
        at = T0 + timedelta(minutes=i // 2)
        key, value = draw(st.integers(0, 2)), draw(st.integers(0, 3))
        event: dict[str, object]
        if draw(st.booleans()):
            event = model(draw(st.sampled_from(MODEL_ACTIONS)), f"/m/{key}", value, at).event
        else:
            event = {
                "event.dataset": "shadowai.inference_process",
                "event.action": draw(st.sampled_from(PROCESS_ACTIONS)),
                "process.pid": 100 + key,
                "process.name": "ollama",
                "ai.gpu.memory_bytes": value,
            }
        if draw(st.booleans()):
            event["host.name"] = draw(st.sampled_from(["mbp", "mbp-2"]))
        alerts = tuple(
            NewAlert(
                f"r{k}-{draw(st.integers(0, 1))}",
                f"title {value}",
                draw(st.sampled_from(["high", "low"])),
                agent_id,
                draw(st.sampled_from(["mbp", "mbp-2"])),
                f"{agent_id}|k{k}",
                i + 1,
                f"summary {i}",
                at,
            )
            for k in draw(st.lists(st.integers(0, 2), max_size=2))
        )
        out.append(Step(event, alerts, at))
    return out


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_batch_ends_as_its_events_one_by_one(
    store: Store, other_store: Store, data: st.DataObject
) -> None:
    agent_id = enroll(store, other_store)
    history = data.draw(steps(agent_id))
    split = data.draw(st.integers(0, len(history) - 1))
    earlier, batch = history[:split], history[split:]
    for target in (store, other_store):
        ship_one_by_one(target, agent_id, 1, earlier)
        # Earlier alerts in each state, so that the batch reopens or keeps them.
        mine = [a for a in target.list_alerts() if a["agent_id"] == agent_id]
        by_rule = sorted(mine, key=lambda a: str(a["rule_id"]))
        for alert, status in zip(by_rule, ALERT_STATES, strict=False):
            target.set_alert_status(int(str(alert["id"])), status, now=T0)
    ship(store, agent_id, split + 1, batch)
    ship_one_by_one(other_store, agent_id, split + 1, batch)
    assert snapshot(store, agent_id) == snapshot(other_store, agent_id)
