"""The gRPC service refuses what it must not believe, with a status that says why."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector.governance import load_rule_dir
from collector.server import Running, start
from collector.store import Store
from wire import envelope
from wire.envelope import raw_public_key
from wire.tokens import secret_digest
from wire.v1 import collector_pb2, collector_pb2_grpc
from wire.v1.events_pb2 import Envelope, Event, ModelFile, Payload

RULES = Path(__file__).resolve().parents[2] / "rules"


@dataclass
class Agent:
    key: Ed25519PrivateKey
    agent_id: str
    stub: collector_pb2_grpc.CollectorStub
    seq: int = 0
    prev: bytes = b""

    def envelope(
        self,
        *,
        seq: int | None = None,
        prev: bytes | None = None,
        created_ms: int | None = None,
        key: Ed25519PrivateKey | None = None,
        path: str = "/m/llama.gguf",
    ) -> Envelope:
        seq = self.seq + 1 if seq is None else seq
        event = Event(
            timestamp_ms=int(time.time() * 1000),
            action="discovered",
            host_name="lap",
            model_file=ModelFile(path=path, format="gguf", size=10),
        )
        payload = Payload(
            agent_id=self.agent_id,
            seq=seq,
            prev_digest=self.prev if prev is None else prev,
            created_ms=int(time.time() * 1000) if created_ms is None else created_ms,
            event=event,
        )
        env = envelope.seal(payload.SerializeToString(), key or self.key, key_id=self.agent_id)
        return env

    def publish(self, *envs: Envelope) -> collector_pb2.PublishResponse:
        response: collector_pb2.PublishResponse = self.stub.Publish(
            collector_pb2.PublishRequest(envelopes=list(envs)), timeout=10
        )
        return response

    def send_next(self) -> collector_pb2.PublishResponse:
        env = self.envelope()
        response = self.publish(env)
        self.seq, self.prev = self.seq + 1, envelope.digest(env)
        return response


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Running, Store]]:
    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    server = start(
        store=store,
        rules=load_rule_dir(RULES),
        grpc_address="127.0.0.1:0",
        http_address="127.0.0.1:0",
        pki=None,
    )
    yield server, store
    server.stop()
    store.close()


@pytest.fixture
def agent(running: tuple[Running, Store]) -> Iterator[Agent]:
    server, store = running
    store.add_enrollment_token(
        token_id="t1",
        secret_sha256=secret_digest(b"s"),
        group="g",
        created_at=datetime.now(UTC),
        expires_at=None,
    )
    channel = grpc.insecure_channel(server.grpc_address)
    stub = collector_pb2_grpc.CollectorStub(channel)
    key = Ed25519PrivateKey.generate()
    reply = stub.Enroll(
        collector_pb2.EnrollRequest(
            token_id="t1",
            token_secret=b"s",
            public_key=raw_public_key(key.public_key()),
            host_name="lap",
            host_os_type="linux",
            agent_version="test",
        ),
        timeout=10,
    )
    yield Agent(key, reply.agent_id, stub)
    channel.close()


def _status(call: grpc.RpcError) -> grpc.StatusCode:
    code: grpc.StatusCode = call.code()
    return code


def test_a_chained_batch_is_acked_up_to_its_last_seq(
    agent: Agent, running: tuple[Running, Store]
) -> None:
    first = agent.envelope()
    second = agent.envelope(seq=2, prev=envelope.digest(first), path="/m/other.gguf")
    reply = agent.publish(first, second)
    assert (reply.acked_seq, reply.accepted) == (2, 2)
    assert {m["file.path"] for m in running[1].list_models()} == {"/m/llama.gguf", "/m/other.gguf"}


def test_a_flipped_payload_byte_is_refused_as_unauthenticated(agent: Agent) -> None:
    env = agent.envelope()
    env.payload = env.payload[:-1] + bytes([env.payload[-1] ^ 1])
    with pytest.raises(grpc.RpcError) as refused:
        agent.publish(env)
    assert _status(refused.value) == grpc.StatusCode.UNAUTHENTICATED


def test_a_signature_by_another_key_is_refused(agent: Agent) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        agent.publish(agent.envelope(key=Ed25519PrivateKey.generate()))
    assert _status(refused.value) == grpc.StatusCode.UNAUTHENTICATED


def test_an_unknown_agent_is_refused(agent: Agent) -> None:
    stranger = Ed25519PrivateKey.generate()
    env = envelope.seal(b"x", stranger, key_id=envelope.agent_id_for(stranger.public_key()))
    with pytest.raises(grpc.RpcError) as refused:
        agent.publish(env)
    assert _status(refused.value) == grpc.StatusCode.UNAUTHENTICATED
    assert "unknown agent" in (refused.value.details() or "")


def test_a_replayed_sequence_number_is_refused_with_the_acked_seq(agent: Agent) -> None:
    env = agent.envelope()
    assert agent.publish(env).acked_seq == 1
    with pytest.raises(grpc.RpcError) as refused:
        agent.publish(env)
    assert _status(refused.value) == grpc.StatusCode.ALREADY_EXISTS
    assert ("shadowai-acked-seq", "1") in tuple(refused.value.trailing_metadata())


def test_a_fork_of_the_hash_chain_is_refused(agent: Agent) -> None:
    agent.send_next()
    with pytest.raises(grpc.RpcError) as refused:
        agent.publish(agent.envelope(prev=b"\x00" * 32))
    assert _status(refused.value) == grpc.StatusCode.FAILED_PRECONDITION


def test_a_clock_far_in_the_future_is_refused(agent: Agent) -> None:
    future = int(time.time() * 1000) + 3600 * 1000
    with pytest.raises(grpc.RpcError) as refused:
        agent.publish(agent.envelope(created_ms=future))
    assert _status(refused.value) == grpc.StatusCode.OUT_OF_RANGE


def test_a_gap_is_accepted_and_recorded(agent: Agent, running: tuple[Running, Store]) -> None:
    reply = agent.publish(agent.envelope(seq=5))
    assert reply.acked_seq == 5
    state = running[1].get_agent(agent.agent_id)
    assert state is not None and state.last_seq == 5


def test_a_refusal_mid_batch_keeps_what_came_before(agent: Agent) -> None:
    good = agent.envelope()
    bad = agent.envelope(seq=2, prev=b"\x01" * 32)
    reply = agent.publish(good, bad)
    assert reply.acked_seq == 1
    assert [r.seq for r in reply.rejections] == [2]
    assert "fork" in reply.rejections[0].reason


def test_a_gguf_event_raises_an_alert(agent: Agent, running: tuple[Running, Store]) -> None:
    agent.send_next()
    alerts = running[1].list_alerts()
    assert [a["rule_title"] for a in alerts] == ["Model not on the approved list"]
    (event,) = running[1].list_events()
    assert "Model inventory" in event["event"]["rule.name"]  # type: ignore[index]


def test_refusals_are_counted_by_check(agent: Agent, running: tuple[Running, Store]) -> None:
    with pytest.raises(grpc.RpcError):
        agent.publish(agent.envelope(key=Ed25519PrivateKey.generate()))
    assert running[0].service.counters.refused["signature"] == 1
