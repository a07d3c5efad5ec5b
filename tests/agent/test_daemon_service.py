"""`run` as a service: a supervisor process and its worker at the lowest priority, health on
its own interval with real CPU figures, `status` while it runs and after it stops."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from agent.cli import main
from collector.governance import load_rule_dir
from collector.server import Running, start
from collector.store import Store
from wire import tokens

RULES = Path(__file__).resolve().parents[2] / "rules"
DEADLINE = 60.0


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[tuple[Running, Store, str]]:
    store = Store.open(f"sqlite:///{tmp_path / 'collector.db'}")
    token = tokens.mint("0" * 64)
    store.add_enrollment_token(
        token_id=token.token_id,
        secret_sha256=token.secret_sha256,
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
    yield running, store, str(token)
    running.stop()
    store.close()


def _status(data: Path) -> dict[str, Any]:
    out = io.StringIO()
    assert main(["--data-dir", str(data), "status"], out=out) == 0
    shown: dict[str, Any] = json.loads(out.getvalue())
    return shown


def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"not within {DEADLINE} s: {what}"
        time.sleep(0.2)


def test_the_service_runs_a_low_priority_worker_reports_health_and_stops_cleanly(
    tmp_path: Path, small_gguf: Path, collector: tuple[Running, Store, str]
) -> None:
    running, store, token = collector
    models, data = tmp_path / "models", tmp_path / "agent"
    models.mkdir()
    (models / "m.gguf").write_bytes(small_gguf.read_bytes())
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[scan]\nroots = ["{models}"]\n[health]\ninterval = 5\n[processes]\nenabled = false\n'
        "[pause]\nbusy_percent = 0\n"
    )
    enroll = ["--data-dir", str(data), "enroll", "--collector", running.grpc_address]
    assert main([*enroll, "--token", token, "--unsafe-plaintext"], out=io.StringIO()) == 0
    command = [sys.executable, "-m", "agent.cli", "--data-dir", str(data), "run"]
    service = subprocess.Popen([*command, "--config", str(config)], stderr=subprocess.DEVNULL)
    try:
        _until(lambda: bool(psutil.Process(service.pid).children()), "a worker process")
        (worker,) = psutil.Process(service.pid).children()
        # Every thread, gRPC's own included, inherits the main thread's lowest priority.
        _until(lambda: len(worker.threads()) >= 4, "the worker's threads")
        nices = {os.getpriority(os.PRIO_PROCESS, t.id) for t in worker.threads()}
        assert nices == {19}
        _until(lambda: _status(data)["service"]["running"], "status says running")
        assert _status(data)["service"]["watchdog"] is True
        _until(lambda: bool(store.list_models()), "the model reaches the collector")
        _until(lambda: bool(store.list_events(dataset="shadowai.agent_health")), "health")
        (health,) = store.list_events(limit=1, dataset="shadowai.agent_health")
        fields = health["event"]
        assert isinstance(fields, dict)
        assert fields["agent.health.private_bytes"] > 0
        assert fields["agent.health.cpu_percent"] > 0.0  # one long-lived handle, not 0.0
        assert fields["agent.health.files_scanned"] == 1
        _until(lambda: _status(data)["service"]["last_contact"] is not None, "last contact")
    finally:
        os.kill(service.pid, signal.SIGTERM)
        assert service.wait(DEADLINE) == 0
    assert not psutil.pid_exists(worker.pid) or worker.status() == psutil.STATUS_ZOMBIE
    assert _status(data)["service"]["running"] is False


def test_the_supervisor_carries_none_of_the_workers_libraries() -> None:
    heavy = ["grpc", "onnxruntime", "cryptography", "numpy", "watchdog"]
    probe = f"import sys, agent.cli; print([m for m in {heavy!r} if m in sys.modules])"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    assert loaded.strip() == "[]"
