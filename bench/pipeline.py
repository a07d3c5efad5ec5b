"""Envelope signing and verification, spool appends, and gRPC ingest into a real store."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.spool import Spool
from collector.governance import load_rule_dir
from collector.server import start
from collector.store import Store
from wire import envelope
from wire.envelope import raw_public_key
from wire.tokens import secret_digest
from wire.v1 import collector_pb2, collector_pb2_grpc
from wire.v1.events_pb2 import Event, ModelFile

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
RULES = Path(__file__).resolve().parent.parent / "rules"


def _event(i: int) -> Event:
    return Event(
        timestamp_ms=int(time.time() * 1000),
        action="discovered",
        host_name="bench",
        model_file=ModelFile(
            path=f"/models/m{i}.gguf",
            format="gguf",
            size=4_000_000_000,
            sha256="ab" * 32,
            architecture="llama",
            parameters=7_000_000_000,
            quantization="Q4_K_M",
        ),
    )


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s"


def envelopes(n: int = 5000) -> Iterator[str]:
    key = Ed25519PrivateKey.generate()
    payload = _event(0).SerializeToString()
    t0 = time.perf_counter()
    sealed = [envelope.seal(payload, key, key_id="k") for _ in range(n)]
    t1 = time.perf_counter()
    for env in sealed:
        envelope.verify(env, key.public_key())
    t2 = time.perf_counter()
    yield f"envelope seal: {_rate(n, t1 - t0)}; verify: {_rate(n, t2 - t1)}"


def spool_and_ingest(n: int = 3000, batch: int = 500) -> Iterator[str]:
    key = Ed25519PrivateKey.generate()
    agent_id = envelope.agent_id_for(key.public_key())
    with tempfile.TemporaryDirectory() as tmp:
        spool = Spool.open(Path(tmp) / "spool.db")
        t0 = time.perf_counter()
        for i in range(n):
            spool.append(_event(i), agent_id=agent_id, key=key, now_ms=int(time.time() * 1000))
        t1 = time.perf_counter()
        yield f"spool append (fsync each): {_rate(n, t1 - t0)}"
        yield from _ingest("sqlite", f"sqlite:///{tmp}/c.db", None, spool, key, agent_id, batch)
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
            yield from _ingest("postgresql", url, schema, spool, key, agent_id, batch)
        finally:
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        spool.close()


def _ingest(
    label: str,
    url: str,
    schema: str | None,
    spool: Spool,
    key: Ed25519PrivateKey,
    agent_id: str,
    batch: int,
) -> Iterator[str]:
    store = Store.open(url, schema=schema)
    store.add_enrollment_token(
        token_id="b",
        secret_sha256=secret_digest(b"s"),
        group="g",
        created_at=datetime.now(UTC),
        expires_at=None,
    )
    running = start(
        store=store,
        rules=load_rule_dir(RULES),
        grpc_address="127.0.0.1:0",
        http_address="127.0.0.1:0",
        pki=None,
    )
    channel = grpc.insecure_channel(running.grpc_address)
    stub = collector_pb2_grpc.CollectorStub(channel)
    stub.Enroll(
        collector_pb2.EnrollRequest(
            token_id="b", token_secret=b"s", public_key=raw_public_key(key.public_key())
        )
    )
    pending = spool.pending(limit=100_000, max_bytes=1 << 30)
    t0 = time.perf_counter()
    for start_at in range(0, len(pending), batch):
        chunk = [envelope_bytes for _, envelope_bytes in pending[start_at : start_at + batch]]
        request = collector_pb2.PublishRequest()
        for raw in chunk:
            request.envelopes.add().ParseFromString(raw)
        stub.Publish(request)
    elapsed = time.perf_counter() - t0
    yield (
        f"gRPC ingest into {label} (verify + chain + rules + store, batches of {batch}): "
        f"{_rate(len(pending), elapsed)}"
    )
    channel.close()
    running.stop()
    store.close()


def run() -> Iterator[str]:
    yield from envelopes()
    yield from spool_and_ingest()
