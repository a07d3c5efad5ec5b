"""What the collector stores goes on to the SIEM: events, collector events and alerts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector.governance import load_rule_dir
from collector.server import Running, start
from collector.store import Store
from tests.collector.service_kit import enroll
from wire import envelope
from wire.v1 import collector_pb2
from wire.v1.events_pb2 import Event, ModelFile, Payload

RULES = Path(__file__).resolve().parents[2] / "rules"


class ListForward:
    """A SIEM that keeps what it is given."""

    def __init__(self) -> None:
        self.events: list[Mapping[str, object]] = []
        self.alerts: list[Mapping[str, object]] = []

    def submit(
        self,
        events: Iterable[Mapping[str, object]] = (),
        alerts: Iterable[Mapping[str, object]] = (),
    ) -> None:
        self.events.extend(events)
        self.alerts.extend(alerts)


@pytest.fixture
def forwarded(tmp_path: Path) -> Iterator[tuple[Running, Store, ListForward]]:
    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    sink = ListForward()
    server = start(
        store=store,
        rules=load_rule_dir(RULES),
        grpc_address="127.0.0.1:0",
        http_address="127.0.0.1:0",
        pki=None,
        forward=sink,
    )
    yield server, store, sink
    server.stop()
    store.close()


def test_stored_events_and_their_alerts_are_forwarded(
    forwarded: tuple[Running, Store, ListForward],
) -> None:
    server, store, sink = forwarded
    agent, channel = enroll(server, store)
    stub, agent_id, key = agent.stub, agent.agent_id, agent.key
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    event = Event(
        timestamp_ms=now_ms,
        action="discovered",
        host_name="lap",
        model_file=ModelFile(path="/m/evil.pkl", format="pickle", risk="dangerous", unsafe=True),
    )
    payload = Payload(agent_id=agent_id, seq=1, created_ms=now_ms, event=event)
    env = envelope.seal(payload.SerializeToString(), key, key_id=agent_id)

    reply = stub.Publish(collector_pb2.PublishRequest(envelopes=[env]), timeout=10)
    channel.close()

    assert reply.acked_seq == 1
    assert [e["file.path"] for e in sink.events] == ["/m/evil.pkl"]
    assert sink.events[0]["agent.id"] == agent_id
    assert sink.alerts, "the dangerous-serialization rule's alert goes to the SIEM too"
    assert len(sink.alerts) == len(store.list_alerts())


def test_nothing_is_forwarded_for_a_refused_envelope(
    forwarded: tuple[Running, Store, ListForward],
) -> None:
    server, store, sink = forwarded
    agent, channel = enroll(server, store)
    stub, agent_id = agent.stub, agent.agent_id
    forged = envelope.seal(
        Payload(agent_id=agent_id, seq=1, event=Event(action="discovered")).SerializeToString(),
        Ed25519PrivateKey.generate(),
        key_id=agent_id,
    )

    stub.Publish(collector_pb2.PublishRequest(envelopes=[forged]), timeout=10)
    channel.close()

    assert all(e.get("event.dataset") == "shadowai.collector" for e in sink.events)
    assert not any(e.get("file.path") for e in sink.events)
