"""The daemon spools a pass and ships it; nothing is lost while the collector is away."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.config import Settings
from agent.daemon import Daemon, build
from agent.pipeline import HostFacts
from agent.shipper import Shipper, ShipStats, drain, open_channel
from agent.spool import Spool
from collector.governance import load_rule_dir
from collector.server import Running, start
from collector.store import Store
from wire.envelope import agent_id_for, raw_public_key
from wire.tokens import secret_digest
from wire.v1 import collector_pb2

RULES = Path(__file__).resolve().parents[2] / "rules"


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[tuple[Running, Store]]:
    store = Store.open(f"sqlite:///{tmp_path / 'collector.db'}")
    store.add_enrollment_token(
        token_id="t",
        secret_sha256=secret_digest(b"s"),
        group="lab",
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
    yield running, store
    running.stop()
    store.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _daemon(tmp_path: Path, models: Path, key: Ed25519PrivateKey, spool: Spool) -> Daemon:
    return build(
        settings=Settings(roots=(models,), watchdog=False, pause_busy_percent=0),
        host=HostFacts(agent_id_for(key.public_key()), "lap-7", "linux", "lab"),
        key=key,
        spool=spool,
        data_dir=tmp_path,
        stop=threading.Event(),
    )


def _spooled_pass(tmp_path: Path, gguf: Path) -> tuple[Path, Ed25519PrivateKey, Spool]:
    """A folder with one GGUF model, a fresh agent key, and one snapshot pass spooled."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "llama.gguf").write_bytes(gguf.read_bytes())
    key = Ed25519PrivateKey.generate()
    spool = Spool.open(tmp_path / "spool.db")
    daemon = _daemon(tmp_path, models, key, spool)
    daemon.models.scan_pass(snapshot=True)
    daemon.send_health()
    daemon.close()
    return models, key, spool


def test_a_pass_spools_one_event_per_change(
    tmp_path: Path, small_gguf: Path, safetensors_model: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "a.gguf").write_bytes(small_gguf.read_bytes())
    (models / "b.safetensors").write_bytes(safetensors_model.read_bytes())
    (models / "c.txt").write_text("not a model")
    spool = Spool.open(tmp_path / "spool.db")
    daemon = _daemon(tmp_path, models, Ed25519PrivateKey.generate(), spool)
    assert daemon.models.scan_pass(snapshot=False).appended == 2
    (models / "a.gguf").unlink()
    second = daemon.models.scan_pass(snapshot=False)
    assert (second.models, second.appended) == (1, 1)  # the removal
    daemon.close()
    spool.close()


def test_events_wait_in_the_spool_until_the_collector_acks_them(
    tmp_path: Path, small_gguf: Path, collector: tuple[Running, Store]
) -> None:
    running, store = collector
    models, key, spool = _spooled_pass(tmp_path, small_gguf)
    spooled = spool.stats().pending

    away = Shipper(open_channel(f"127.0.0.1:{_free_port()}", None), timeout=2)
    stop, stats = threading.Event(), ShipStats()
    threading.Timer(1.0, stop.set).start()
    assert drain(spool, away, stop=stop, stats=stats, rand=lambda: 0.0) is False
    away.close()
    assert stats.failures >= 1
    assert spool.stats().pending == spooled

    shipper = Shipper(open_channel(running.grpc_address, None))
    shipper.enroll(
        collector_pb2.EnrollRequest(
            token_id="t",
            token_secret=b"s",
            public_key=raw_public_key(key.public_key()),
            host_name="lap-7",
            host_os_type="linux",
            agent_version="test",
        )
    )
    assert drain(spool, shipper, stop=threading.Event(), stats=ShipStats()) is True
    shipper.close()
    assert spool.stats().pending == 0
    assert [m["file.path"] for m in store.list_models()] == [str(models / "llama.gguf")]
    spool.close()


def test_a_lost_ack_is_recovered_without_duplicates(
    tmp_path: Path, small_gguf: Path, collector: tuple[Running, Store]
) -> None:
    running, store = collector
    _, key, spool = _spooled_pass(tmp_path, small_gguf)
    shipper = Shipper(open_channel(running.grpc_address, None))
    shipper.enroll(
        collector_pb2.EnrollRequest(
            token_id="t", token_secret=b"s", public_key=raw_public_key(key.public_key())
        )
    )
    batch = spool.pending()
    first = shipper.publish([env for _, env in batch])  # its ack is "lost": not applied
    assert first.acked_seq == batch[-1][0]
    assert drain(spool, shipper, stop=threading.Event(), stats=ShipStats()) is True
    assert spool.stats().pending == 0
    assert len(store.list_events(limit=1000)) == len(batch)
    shipper.close()
    spool.close()
