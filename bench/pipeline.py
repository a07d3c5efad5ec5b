"""Envelope signing and verification, spool appends, and gRPC ingest into a real store."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import numpy as np
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gguf import GGUFWriter

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
BIN = Path(sys.executable).parent


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
    # CPU seconds of this process (client and in-process collector): far less sensitive
    # than wall time to other work on a shared machine.
    c0 = time.process_time()
    t0 = time.perf_counter()
    for start_at in range(0, len(pending), batch):
        chunk = [envelope_bytes for _, envelope_bytes in pending[start_at : start_at + batch]]
        request = collector_pb2.PublishRequest()
        for raw in chunk:
            request.envelopes.add().ParseFromString(raw)
        stub.Publish(request)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    yield (
        f"gRPC ingest into {label} (verify + chain + rules + store, batches of {batch}): "
        f"{_rate(len(pending), elapsed)}; {len(pending) / cpu:,.0f} events per CPU-second"
    )
    channel.close()
    running.stop()
    store.close()


def convergence(models: int = 50) -> Iterator[str]:
    """Seconds until the collector's inventory equals the disk after the agent's spool is
    deleted (with one model spooled and lost in it), against a plain `run --once` of the
    same tree with its spool intact (warm caches both): real processes, so the ratio is what
    the resync and the snapshot it asks for cost."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tree = root / "models"
        tree.mkdir()
        for i in range(models):
            _write_gguf(tree / f"m{i:03d}.gguf")
        collector = _serve(root)
        try:
            grpc_line = collector.stdout.readline() if collector.stdout else ""
            target = grpc_line.rsplit(" ", 1)[1].strip()
            token = _cli("shadowai-collector", root / "c", "tokens", "create")
            _cli("shadowai-agent", root / "a", "enroll", "--collector", target, "--token", token)
            _cli("shadowai-agent", root / "a", "run", "--once", "--path", str(tree))  # warm-up
            t0 = time.perf_counter()
            _cli("shadowai-agent", root / "a", "run", "--once", "--path", str(tree))
            plain = time.perf_counter() - t0
            _write_gguf(tree / "late.gguf")
            collector.send_signal(signal.SIGSTOP)  # an outage: late.gguf waits in the spool
            _cli(
                "shadowai-agent", root / "a", "run", "--once", "--path", str(tree), "--timeout", "1"
            )
            collector.send_signal(signal.SIGCONT)
            for name in ("spool.db", "spool.db-wal", "spool.db-shm"):
                (root / "a" / name).unlink(missing_ok=True)
            t0 = time.perf_counter()
            _cli("shadowai-agent", root / "a", "run", "--once", "--path", str(tree))
            converged = time.perf_counter() - t0
            stored = _model_count(root)
        finally:
            collector.terminate()
            collector.wait(15)
    assert stored == models + 1, f"not converged: {stored} of {models + 1} models stored"
    yield (
        f"converge after spool deletion ({models + 1} models, run --once incl. start-up): "
        f"{converged:.2f} s; plain run --once {plain:.2f} s; ratio {converged / plain:.2f}"
    )


def _write_gguf(path: Path) -> None:
    writer = GGUFWriter(str(path), "llama")
    writer.add_name(path.stem)
    writer.add_tensor("token_embd.weight", np.ones((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _serve(root: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            str(BIN / "shadowai-collector"),
            *("serve", "--data-dir", str(root / "c"), "--rules", str(RULES)),
            *("--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _cli(program: str, data_dir: Path, *args: str) -> str:
    cmd = [str(BIN / program), "--data-dir", str(data_dir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300).stdout.strip()


def _model_count(root: Path) -> int:
    store = Store.open(f"sqlite:///{root / 'c' / 'collector.db'}")
    try:
        return len(store.list_models())
    finally:
        store.close()


def run() -> Iterator[str]:
    yield from envelopes()
    yield from spool_and_ingest()
    yield from convergence()
