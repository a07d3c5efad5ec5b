"""The gRPC service refuses what it must not believe, with a status that says why."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector.governance import load_rule_dir
from collector.server import Running, start
from collector.store import Store
from tests.collector.service_kit import Agent, enroll
from wire import envelope
from wire.v1 import collector_pb2, collector_pb2_grpc

RULES = Path(__file__).resolve().parents[2] / "rules"


@contextmanager
def _collector(database: Path) -> Iterator[tuple[Running, Store]]:
    """A collector serving plaintext gRPC over the SQLite store at `database`."""
    store = Store.open(f"sqlite:///{database}")
    server = start(
        store=store,
        rules=load_rule_dir(RULES),
        grpc_address="127.0.0.1:0",
        http_address="127.0.0.1:0",
        pki=None,
    )
    try:
        yield server, store
    finally:
        server.stop()
        store.close()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Running, Store]]:
    with _collector(tmp_path / "c.db") as served:
        yield served


@pytest.fixture
def agent(running: tuple[Running, Store]) -> Iterator[Agent]:
    enrolled, channel = enroll(*running)
    yield enrolled
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


def test_a_flipped_payload_byte_is_refused_for_its_signature(agent: Agent) -> None:
    env = agent.envelope()
    env.payload = env.payload[:-1] + bytes([env.payload[-1] ^ 1])
    reply = agent.publish(env)
    assert [(r.code, r.index) for r in reply.rejections] == [("signature", 0)]
    assert reply.accepted == 0


def test_a_signature_by_another_key_is_refused(agent: Agent) -> None:
    reply = agent.publish(agent.envelope(key=Ed25519PrivateKey.generate()))
    assert [r.code for r in reply.rejections] == ["signature"]


def test_an_unknown_agent_is_refused(agent: Agent) -> None:
    stranger = Ed25519PrivateKey.generate()
    env = envelope.seal(b"x", stranger, key_id=envelope.agent_id_for(stranger.public_key()))
    with pytest.raises(grpc.RpcError) as refused:
        agent.publish(env)
    assert _status(refused.value) == grpc.StatusCode.UNAUTHENTICATED
    assert "unknown agent" in (refused.value.details() or "")


def test_a_replay_with_the_same_digest_is_a_duplicate_and_acked(agent: Agent) -> None:
    env = agent.envelope()
    assert agent.publish(env).acked_seq == 1
    again = agent.publish(env)
    assert (again.acked_seq, again.duplicates, len(again.rejections)) == (1, 1, 0)
    assert again.last_digest == envelope.digest(env)


def test_a_replay_with_another_digest_is_refused_not_acked_as_stored(
    agent: Agent, running: tuple[Running, Store]
) -> None:
    agent.send_next()
    other = agent.envelope(seq=1, prev=b"", path="/m/clone.gguf")
    reply = agent.publish(other)
    assert [r.code for r in reply.rejections] == ["replay_mismatch"]
    assert reply.duplicates == 0
    reasons = {e["event.reason"] for e in running[1].list_collector_events()}
    assert reasons & {"cloned_identity", "replay_mismatch"}


def test_a_fork_of_the_hash_chain_is_refused_and_its_descendants_too(agent: Agent) -> None:
    agent.send_next()
    fork = agent.envelope(prev=b"\x00" * 32)
    child = agent.envelope(seq=3, prev=envelope.digest(fork))
    grandchild = agent.envelope(seq=4, prev=b"whatever")
    reply = agent.publish(fork)
    assert [r.code for r in reply.rejections] == ["fork"]
    later = agent.publish(child)
    assert [r.code for r in later.rejections] == ["fork"]
    assert later.last_seq == 1
    # A jump whose parent is unknown is a gap: the chain cannot tell it from dropped envelopes.
    assert agent.publish(grandchild).rejections == []


def test_a_clock_far_in_the_future_is_refused_and_the_chain_moves_past_it(agent: Agent) -> None:
    future = int(time.time() * 1000) + 3600 * 1000
    skewed = agent.envelope(created_ms=future)
    after = agent.envelope(seq=2, prev=envelope.digest(skewed))
    reply = agent.publish(skewed, after)
    assert [(r.code, r.seq) for r in reply.rejections] == [("clock", 1)]
    assert (reply.accepted, reply.acked_seq, reply.last_seq) == (1, 2, 2)


def test_a_gap_is_accepted_recorded_and_asks_for_a_snapshot(
    agent: Agent, running: tuple[Running, Store]
) -> None:
    reply = agent.publish(agent.envelope(seq=5))
    assert (reply.acked_seq, reply.snapshot_requested) == (5, True)
    state = running[1].get_agent(agent.agent_id)
    assert state is not None and state.last_seq == 5
    assert running[1].delivery_counters(agent.agent_id)[agent.agent_id]["gaps"] == 1


def test_reordered_envelopes_are_all_stored_once(
    agent: Agent, running: tuple[Running, Store]
) -> None:
    one = agent.envelope(path="/m/1.gguf")
    two = agent.envelope(seq=2, prev=envelope.digest(one), path="/m/2.gguf")
    three = agent.envelope(seq=3, prev=envelope.digest(two), path="/m/3.gguf")
    agent.publish(one)
    agent.publish(three)
    late = agent.publish(two)
    assert (late.accepted, late.last_seq) == (1, 3)
    assert agent.publish(two).duplicates == 1
    paths = sorted(str(m["file.path"]) for m in running[1].list_models())
    assert paths == ["/m/1.gguf", "/m/2.gguf", "/m/3.gguf"]


def test_a_refusal_mid_batch_does_not_hold_back_the_rest(agent: Agent) -> None:
    good = agent.envelope()
    bad = agent.envelope(seq=2, prev=b"\x01" * 32)
    reply = agent.publish(good, bad)
    assert reply.last_seq == 1
    assert [(r.seq, r.code) for r in reply.rejections] == [(2, "fork")]
    assert reply.acked_seq == 2


def test_an_empty_publish_reports_the_position(agent: Agent) -> None:
    agent.send_next()
    reply = agent.stub.Publish(collector_pb2.PublishRequest(agent_id=agent.agent_id), timeout=10)
    assert (reply.last_seq, reply.last_digest) == (1, agent.prev)


def test_a_revoked_agent_is_told_so(agent: Agent, running: tuple[Running, Store]) -> None:
    running[1].revoke_agent(agent.agent_id)
    with pytest.raises(grpc.RpcError) as refused:
        agent.send_next()
    assert _status(refused.value) == grpc.StatusCode.PERMISSION_DENIED
    assert ("shadowai-revoked", "1") in tuple(refused.value.trailing_metadata())


def test_refused_envelopes_are_kept_for_the_analyst(
    agent: Agent, running: tuple[Running, Store]
) -> None:
    agent.publish(agent.envelope(key=Ed25519PrivateKey.generate()))
    (kept,) = running[1].list_refusals(agent_id=agent.agent_id)
    assert kept["code"] == "signature" and kept["envelope_bytes"]


def test_a_gguf_event_raises_an_alert(agent: Agent, running: tuple[Running, Store]) -> None:
    agent.send_next()
    alerts = running[1].list_alerts()
    assert [a["rule_title"] for a in alerts] == ["Model not on the approved list"]
    (event,) = running[1].list_events()
    assert "Model inventory" in event["event"]["rule.name"]  # type: ignore[index]


def test_refusals_are_counted_by_check(agent: Agent, running: tuple[Running, Store]) -> None:
    for _ in range(3):
        agent.publish(agent.envelope(key=Ed25519PrivateKey.generate()))
    assert running[0].service.counters.refused["signature"] == 3
    counters = running[1].delivery_counters(agent.agent_id)[agent.agent_id]
    assert counters["refused.signature"] == 3


def test_enrollment_is_rate_limited_per_address_with_a_retry_hint(agent: Agent) -> None:
    codes = []
    for _ in range(12):
        try:
            agent.stub.Enroll(collector_pb2.EnrollRequest(public_key=b"bad"), timeout=10)
        except grpc.RpcError as exc:
            codes.append(_status(exc))
            last = exc
    assert codes[-1] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert grpc.StatusCode.INVALID_ARGUMENT in codes
    hints = dict(last.trailing_metadata() or ())
    assert int(hints["grpc-retry-pushback-ms"]) > 0


def test_a_silent_agent_raises_a_collector_event_and_an_alert_once(
    agent: Agent, running: tuple[Running, Store]
) -> None:
    agent.send_next()
    service, store = running[0].service, running[1]
    assert service.report_silence(silent_after=0) == 1
    assert service.report_silence(silent_after=0) == 0
    (note,) = store.list_collector_events(agent_id=agent.agent_id)
    assert note["event.reason"] == "silence" and note["agent.id"] == agent.agent_id
    titles = {a["rule_title"] for a in store.list_alerts()}
    assert "Agent silent for a long time" in titles


def test_an_agent_revoked_after_its_position_was_kept_is_told_so_on_its_next_batch(
    agent: Agent, running: tuple[Running, Store]
) -> None:
    agent.send_next()  # the service now holds the agent's position in memory
    running[1].revoke_agent(agent.agent_id)
    with pytest.raises(grpc.RpcError) as refused:
        agent.send_next()
    assert _status(refused.value) == grpc.StatusCode.PERMISSION_DENIED
    assert running[1].get_agent(agent.agent_id).last_seq == 1  # type: ignore[union-attr]


def test_a_batch_another_collector_stored_meanwhile_is_acked_as_duplicates(
    agent: Agent, running: tuple[Running, Store], tmp_path: Path
) -> None:
    agent.send_next()  # collector A keeps seq 1 as the agent's position
    with _collector(tmp_path / "c.db") as (other, _):
        channel = grpc.insecure_channel(other.grpc_address)
        try:
            second = agent.envelope(path="/m/second.gguf")
            via_b = replace(agent, stub=collector_pb2_grpc.CollectorStub(channel))
            assert via_b.publish(second).acked_seq == 2
            agent.seq, agent.prev = 2, envelope.digest(second)
            third = agent.envelope(path="/m/third.gguf")
            # A's kept position is out of date: it must find out, not refuse or abort.
            reply = agent.publish(second, third)
        finally:
            channel.close()
    assert (reply.acked_seq, reply.accepted, reply.duplicates) == (3, 1, 1)
    assert not reply.rejections
    seqs = [e["seq"] for e in running[1].list_events()]
    assert len(seqs) == 3 and set(seqs) == {1, 2, 3}
