"""/metrics and /healthz of a running collector, after events came in over real gRPC."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client.parser import text_string_to_metric_families

from collector.governance import load_rule_dir
from collector.server import Running, start
from collector.store import Store
from collector.web.auth import mint_api_token
from tests.collector.conftest import StoreTarget
from tests.collector.service_kit import Agent, enroll
from wire import envelope
from wire.v1.events_pb2 import Envelope, Event, ModelFile, Payload

RULES = Path(__file__).resolve().parents[2] / "rules"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def running(store_target: StoreTarget) -> Iterator[tuple[Running, Store]]:
    store = store_target.open()
    server = start(
        store=store,
        rules=load_rule_dir(RULES),
        grpc_address="127.0.0.1:0",
        http_address="127.0.0.1:0",
        pki=None,
        metrics_address="127.0.0.1:0",
    )
    yield server, store
    server.stop()
    store.close()


def _dangerous_pickle(agent: Agent) -> Envelope:
    event = Event(
        timestamp_ms=int(time.time() * 1000),
        action="discovered",
        host_name="lap",
        model_file=ModelFile(path="/m/evil.pkl", format="pickle", risk="dangerous", unsafe=True),
    )
    payload = Payload(
        agent_id=agent.agent_id,
        seq=agent.seq + 1,
        prev_digest=agent.prev,
        created_ms=int(time.time() * 1000),
        event=event,
    )
    return envelope.seal(payload.SerializeToString(), agent.key, key_id=agent.agent_id)


def _traffic(server: Running, store: Store) -> None:
    """Two model files, one of them dangerous; a resent envelope; a forged signature."""
    agent, channel = enroll(server, store)
    try:
        first = agent.envelope()
        agent.publish(first)
        agent.seq, agent.prev = 1, envelope.digest(first)
        evil = _dangerous_pickle(agent)
        forged = agent.envelope(seq=3, key=Ed25519PrivateKey.generate())
        reply = agent.publish(evil, first, forged)
        assert (reply.accepted, reply.duplicates, len(reply.rejections)) == (1, 1, 1)
    finally:
        channel.close()


def _samples(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _token(store: Store) -> dict[str, str]:
    token, token_id, digest = mint_api_token()
    store.add_api_token(
        token_id=token_id, secret_sha256=digest, role="viewer", created_at=datetime.now(UTC)
    )
    return {"Authorization": f"Bearer {token}"}


def test_ingest_moves_the_counters(running: tuple[Running, Store]) -> None:
    server, store = running
    _traffic(server, store)
    response = httpx.get(f"http://{server.http_address}/metrics", headers=_token(store))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = _samples(response.text)
    assert found[("shadowai_events_ingested_total", (("dataset", "shadowai.model_file"),))] == 2
    assert found[("shadowai_envelopes_accepted_total", ())] == 2
    assert found[("shadowai_envelopes_duplicate_total", ())] == 1
    assert found[("shadowai_refusals_total", (("code", "signature"),))] == 1
    assert found[("shadowai_alerts_raised_total", (("level", "high"),))] >= 1
    assert found[("shadowai_publish_batch_envelopes_count", ())] == 2
    assert found[("shadowai_publish_batch_envelopes_sum", ())] == 4
    assert found[("shadowai_publish_in_flight", ())] == 0
    assert found[("shadowai_rule_evaluation_seconds_count", ())] == 2
    assert found[("shadowai_store_up", ())] == 1
    assert found[("shadowai_agents_enrolled", ())] == 1
    assert found[("shadowai_agents_online", ())] == 1
    assert found[("shadowai_store_errors_total", ())] == 0


def test_the_main_port_wants_a_token(running: tuple[Running, Store]) -> None:
    server, _ = running
    url = f"http://{server.http_address}/metrics"
    assert httpx.get(url).status_code == 401
    stranger, _, _ = mint_api_token()
    assert httpx.get(url, headers={"Authorization": f"Bearer {stranger}"}).status_code == 401


def test_the_scrape_listener_serves_metrics_alone_without_a_token(
    running: tuple[Running, Store],
) -> None:
    server, store = running
    _traffic(server, store)
    base = f"http://{server.metrics_address}"
    response = httpx.get(f"{base}/metrics")
    assert response.status_code == 200
    assert _samples(response.text)[("shadowai_envelopes_accepted_total", ())] == 2
    for path in ("/", "/healthz", "/api/v1/hosts", "/docs", "/openapi.json"):
        assert httpx.get(f"{base}{path}").status_code == 404, path


def test_each_collector_counts_its_own(running: tuple[Running, Store], tmp_path: Path) -> None:
    """The registry belongs to the service: a second collector in the process starts at 0."""
    server, store = running
    _traffic(server, store)
    other_store = Store.open(f"sqlite:///{tmp_path / 'other.db'}")
    other = start(
        store=other_store,
        rules=load_rule_dir(RULES),
        grpc_address="127.0.0.1:0",
        http_address="127.0.0.1:0",
        pki=None,
    )
    try:
        found = _samples(other.metrics.render().decode())
        assert found[("shadowai_envelopes_accepted_total", ())] == 0
    finally:
        other.stop()
        other_store.close()


def test_healthz_answers_without_a_token(running: tuple[Running, Store]) -> None:
    server, _ = running
    response = httpx.get(f"http://{server.http_address}/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok", "store": "ok"})
