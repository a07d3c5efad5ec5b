"""Ingest: one transaction that advances the chain, keeps events and updates the inventory."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from collector.errors import CollectorError
from collector.store import AgentRecord, ConcurrentUpdate, Gap, NewAlert, Store, StoredEvent

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
AGENT = "agent-1"
PATH = "/Users/dev/.ollama/models/blobs/sha256-6a0746a1ec1a"


def enroll(store: Store, agent_id: str = AGENT) -> None:
    store.add_agent(AgentRecord(agent_id, b"\x01" * 32, "mbp", "darwin", "ml", "0.1.0", T0))


def model_event(action: str, **fields: object) -> dict[str, object]:
    event: dict[str, object] = {
        "event.dataset": "shadowai.model_file",
        "event.action": action,
        "file.path": PATH,
    }
    event.update({k.replace("__", "."): v for k, v in fields.items()})
    return event


def process_event(action: str, pid: int = 4242, **fields: object) -> dict[str, object]:
    event: dict[str, object] = {
        "event.dataset": "shadowai.inference_process",
        "event.action": action,
        "process.pid": pid,
        "process.name": "ollama",
        "host.name": "mbp",
    }
    event.update({k.replace("__", "."): v for k, v in fields.items()})
    return event


class Shipper:
    """Feeds one agent's events through ingest with consecutive seqs, as the service does."""

    def __init__(self, store: Store, agent_id: str = AGENT) -> None:
        self.store, self.agent_id, self.seq = store, agent_id, 0

    def ship(
        self,
        events: Sequence[Mapping[str, object]],
        at: datetime = T0,
        alerts: Sequence[NewAlert] = (),
        gaps: Sequence[Gap] = (),
    ) -> None:
        stored = [
            StoredEvent(self.seq + i, b"d%d" % (self.seq + i), b"env", at, event)
            for i, event in enumerate(events, start=1)
        ]
        last = self.seq + len(events)
        self.store.ingest(
            agent_id=self.agent_id,
            expected_last_seq=self.seq,
            last_seq=last,
            last_digest=b"d%d" % last,
            events=stored,
            gaps=gaps,
            alerts=alerts,
            now=at,
        )
        self.seq = last


def alert(dedup_key: str = "k1", at: datetime = T0, summary: str = "pickle model") -> NewAlert:
    return NewAlert("r-pickle", "Pickle model", "high", AGENT, "mbp", dedup_key, 1, summary, at)


@pytest.fixture
def shipper(store: Store) -> Shipper:
    enroll(store)
    return Shipper(store)


def test_ingest_advances_the_agent_chain(store: Store, shipper: Shipper) -> None:
    shipper.ship([model_event("discovered"), model_event("snapshot")], at=T0)
    state = store.get_agent(AGENT)
    assert state is not None
    assert (state.last_seq, state.last_digest, state.last_seen) == (2, b"d2", T0)


def test_events_list_newest_first_and_filter_by_dataset(store: Store, shipper: Shipper) -> None:
    shipper.ship([model_event("discovered"), process_event("started")])
    shipper.ship([{"event.dataset": "shadowai.agent_health", "event.action": "snapshot"}])
    assert [e["seq"] for e in store.list_events()] == [3, 2, 1]
    assert [e["seq"] for e in store.list_events(limit=1)] == [3]
    models = store.list_events(dataset="shadowai.model_file")
    assert len(models) == 1
    assert models[0]["event"] == model_event("discovered")
    assert models[0]["agent_id"] == AGENT
    assert models[0]["received_at"] == T0.isoformat()


def test_gaps_are_recorded(store: Store, shipper: Shipper) -> None:
    shipper.ship([model_event("discovered")], gaps=[Gap(AGENT, 5, 9, T0)])
    assert store.list_gaps() == [
        {"agent_id": AGENT, "from_seq": 5, "to_seq": 9, "at": T0.isoformat()}
    ]
    assert store.list_gaps(agent_id="other") == []


def test_discovered_model_is_listed_with_its_fields(store: Store, shipper: Shipper) -> None:
    shipper.ship(
        [model_event("discovered", ai__model__format="gguf", ai__model__parameters=7_241_732_096)]
    )
    (model,) = store.list_models()
    assert model["agent_id"] == AGENT
    assert model["host.name"] == "mbp"
    assert model["file.path"] == PATH
    assert model["ai.model.format"] == "gguf"
    assert model["ai.model.parameters"] == 7_241_732_096
    assert model["ai.model.quantization"] is None  # every known field is present
    assert (model["first_seen"], model["last_seen"], model["removed_at"]) == (
        T0.isoformat(),
        T0.isoformat(),
        None,
    )


def test_changed_model_keeps_first_seen_and_takes_new_fields(
    store: Store, shipper: Shipper
) -> None:
    later = T0 + timedelta(hours=2)
    shipper.ship([model_event("discovered", file__size=10, ai__model__name="old")])
    shipper.ship([model_event("changed", file__size=20)], at=later)
    (model,) = store.list_models()
    assert (model["file.size"], model["ai.model.name"]) == (20, None)
    assert (model["first_seen"], model["last_seen"]) == (T0.isoformat(), later.isoformat())


def test_removed_model_is_hidden_unless_asked_for(store: Store, shipper: Shipper) -> None:
    later = T0 + timedelta(hours=1)
    shipper.ship([model_event("discovered", file__size=10)])
    shipper.ship([model_event("removed")], at=later)
    assert store.list_models() == []
    (model,) = store.list_models(include_removed=True)
    assert model["removed_at"] == later.isoformat()
    assert model["file.size"] == 10


def test_rediscovered_model_is_no_longer_removed(store: Store, shipper: Shipper) -> None:
    shipper.ship([model_event("discovered"), model_event("removed"), model_event("snapshot")])
    (model,) = store.list_models()
    assert model["removed_at"] is None


def test_models_are_keyed_by_agent_and_path(store: Store, shipper: Shipper) -> None:
    enroll(store, "agent-2")
    shipper.ship([model_event("discovered"), model_event("snapshot")])
    Shipper(store, "agent-2").ship([model_event("discovered")])
    assert sorted(str(m["agent_id"]) for m in store.list_models()) == [AGENT, "agent-2"]


def test_process_started_then_stopped(store: Store, shipper: Shipper) -> None:
    later = T0 + timedelta(minutes=30)
    shipper.ship([process_event("started", ai__listen__port=11434)])
    (proc,) = store.list_processes()
    assert (proc["process.pid"], proc["process.name"], proc["ai.listen.port"]) == (
        4242,
        "ollama",
        11434,
    )
    assert "host.name" in proc and proc["host.name"] == "mbp"
    shipper.ship([process_event("stopped")], at=later)
    assert store.list_processes() == []
    (stopped,) = store.list_processes(include_stopped=True)
    assert stopped["stopped_at"] == later.isoformat()


def test_processes_are_keyed_by_pid_and_name(store: Store, shipper: Shipper) -> None:
    shipper.ship([process_event("started", 1), process_event("started", 2)])
    shipper.ship([process_event("changed", 1, ai__gpu__memory_bytes=5)])
    procs = {int(str(p["process.pid"])): p for p in store.list_processes()}
    assert sorted(procs) == [1, 2]
    assert procs[1]["ai.gpu.memory_bytes"] == 5


def test_hosts_follow_the_latest_event(store: Store, shipper: Shipper) -> None:
    later = T0 + timedelta(hours=1)
    renamed = model_event("discovered", host__name="mbp-2", agent__version="0.2.0")
    shipper.ship([renamed], at=later, alerts=[alert()])
    (host,) = store.list_hosts()
    assert host["host.name"] == "mbp-2"
    assert host["agent.version"] == "0.2.0"
    assert host["host.group"] == "ml"  # the enrollment decides the group
    assert (host["model_count"], host["open_alerts"], host["last_seen"]) == (
        1,
        1,
        later.isoformat(),
    )


def test_new_alert_opens_with_count_one(store: Store, shipper: Shipper) -> None:
    shipper.ship([model_event("discovered")], alerts=[alert()])
    (a,) = store.list_alerts()
    assert isinstance(a["id"], int)
    assert {k: a[k] for k in ("rule_id", "rule_title", "level", "status", "count")} == {
        "rule_id": "r-pickle",
        "rule_title": "Pickle model",
        "level": "high",
        "status": "open",
        "count": 1,
    }
    assert (a["agent_id"], a["host.name"], a["summary"]) == (AGENT, "mbp", "pickle model")
    assert a["first_seen"] == a["last_seen"] == T0.isoformat()


def test_repeated_alert_counts_up_instead_of_duplicating(store: Store, shipper: Shipper) -> None:
    later = T0 + timedelta(days=1)
    shipper.ship([model_event("discovered")], alerts=[alert()])
    shipper.ship(
        [model_event("snapshot")], at=later, alerts=[alert(at=later, summary="still there")]
    )
    (a,) = store.list_alerts()
    assert (a["count"], a["summary"]) == (2, "still there")
    assert (a["first_seen"], a["last_seen"]) == (T0.isoformat(), later.isoformat())


def test_same_dedup_key_twice_in_one_batch_counts_two(store: Store, shipper: Shipper) -> None:
    shipper.ship([model_event("discovered"), model_event("snapshot")], alerts=[alert(), alert()])
    assert [a["count"] for a in store.list_alerts()] == [2]


def test_resolved_alert_reopens_when_it_fires_again(store: Store, shipper: Shipper) -> None:
    shipper.ship([model_event("discovered")], alerts=[alert()])
    (a,) = store.list_alerts()
    assert store.set_alert_status(int(str(a["id"])), "resolved")
    shipper.ship([model_event("snapshot")], alerts=[alert()])
    assert [x["status"] for x in store.list_alerts()] == ["open"]


def test_acknowledged_alert_stays_acknowledged_when_it_fires_again(
    store: Store, shipper: Shipper
) -> None:
    shipper.ship([model_event("discovered")], alerts=[alert()])
    alert_id = int(str(store.list_alerts()[0]["id"]))
    store.set_alert_status(alert_id, "acknowledged")
    shipper.ship([model_event("snapshot")], alerts=[alert()])
    assert [(x["status"], x["count"]) for x in store.list_alerts()] == [("acknowledged", 2)]


def test_alerts_filter_by_status_and_list_latest_first(store: Store, shipper: Shipper) -> None:
    later = T0 + timedelta(minutes=1)
    shipper.ship([model_event("discovered")], alerts=[alert("k1")])
    shipper.ship([model_event("snapshot")], at=later, alerts=[alert("k2", at=later)])
    first_id = int(str(store.list_alerts()[-1]["id"]))
    store.set_alert_status(first_id, "resolved")
    assert [a["status"] for a in store.list_alerts()] == ["open", "resolved"]
    assert [a["id"] for a in store.list_alerts(status="resolved")] == [first_id]
    assert len(store.list_alerts(limit=1)) == 1
    assert store.counts() == {"hosts": 1, "models": 1, "open_alerts": 1}


def test_alert_status_must_be_known(store: Store) -> None:
    with pytest.raises(ValueError, match="not one of open, acknowledged, resolved"):
        store.set_alert_status(1, "ignored")
    assert store.set_alert_status(999, "resolved") is False


def test_stale_replica_gets_concurrent_update_and_stores_nothing(
    store: Store, shipper: Shipper, open_store: Callable[[], Store]
) -> None:
    replica = open_store()
    try:
        stale = Shipper(replica)  # both replicas believe the agent is at seq 0
        shipper.ship([model_event("discovered")])
        with pytest.raises(ConcurrentUpdate, match="is at seq 1, not the expected 0"):
            stale.ship([process_event("started")], alerts=[alert()])
    finally:
        replica.close()
    assert [e["seq"] for e in store.list_events()] == [1]
    assert store.list_alerts() == [] and store.list_processes() == []


def test_revoked_or_unknown_agent_cannot_ingest(store: Store, shipper: Shipper) -> None:
    store.revoke_agent(AGENT)
    with pytest.raises(ConcurrentUpdate, match="was revoked"):
        shipper.ship([model_event("discovered")])
    with pytest.raises(ConcurrentUpdate, match="is not enrolled"):
        Shipper(store, "ghost").ship([model_event("discovered")])
    assert store.list_events() == []


def test_duplicate_seq_rolls_back_the_whole_batch(store: Store, shipper: Shipper) -> None:
    shipper.ship([model_event("discovered")])
    replay = StoredEvent(1, b"d1", b"env", T0, process_event("started"))
    with pytest.raises(CollectorError, match=f"ingest for agent {AGENT}"):
        store.ingest(
            agent_id=AGENT,
            expected_last_seq=1,
            last_seq=2,
            last_digest=b"d2",
            events=[replay],
            gaps=[],
            alerts=[alert()],
            now=T0,
        )
    state = store.get_agent(AGENT)
    assert state is not None and state.last_seq == 1
    assert store.list_alerts() == [] and store.list_processes() == []


def test_long_paths_and_keys_fit(store: Store, shipper: Shipper) -> None:
    long_path = "/data/" + "deep/" * 2000 + "model.safetensors"
    event = model_event("discovered")
    event["file.path"] = long_path
    shipper.ship([event], alerts=[alert(dedup_key="r|a|" + long_path)])
    assert [m["file.path"] for m in store.list_models()] == [long_path]
    assert len(store.list_alerts()) == 1
