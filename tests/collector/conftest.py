"""Store fixtures: every store test runs on SQLite and on the PostgreSQL server.

PostgreSQL is never skipped: a missing server is a failing test, not a quiet pass.
Each PostgreSQL test gets its own schema, dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from collector.store import AgentRecord, NewAlert, Store, StoredEvent

POSTGRES_URL = os.environ.get(
    "SHADOWAI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@dataclass(frozen=True)
class StoreTarget:
    """Where a test's database lives; open() gives another Store on it (another replica)."""

    url: str
    schema: str | None

    def open(self) -> Store:
        return Store.open(self.url, schema=self.schema)


def _drop_schema(schema: str) -> None:
    engine = create_engine(POSTGRES_URL)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreTarget]:
    if request.param == "sqlite":
        yield StoreTarget(f"sqlite:///{tmp_path / 'collector.db'}", None)
        return
    schema = f"t_{secrets.token_hex(8)}"
    try:
        yield StoreTarget(POSTGRES_URL, schema)
    finally:
        _drop_schema(schema)


@pytest.fixture
def open_store(store_target: StoreTarget) -> Callable[[], Store]:
    """Opens another Store on the test's database, as a second collector replica would."""
    return store_target.open


@pytest.fixture
def store(store_target: StoreTarget) -> Iterator[Store]:
    opened = store_target.open()
    try:
        yield opened
    finally:
        opened.close()


SEED_TIME = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
HOSTILE_PATH = "/home/dev/<script>alert(1)</script>.gguf"


@dataclass(frozen=True)
class SeededFleet:
    agent_id: str
    host_name: str
    model_path: str
    hostile_path: str
    rule_id: str
    alert_title: str


def _seed(store: Store) -> SeededFleet:
    """One enrolled laptop with two models (one with a hostile path) and one open alert."""
    agent_id, host = "agent-0001", "dev-laptop-7"
    store.add_agent(
        AgentRecord(agent_id, b"\x01" * 32, host, "linux", "ml-team", "0.1.0", SEED_TIME)
    )
    common: dict[str, object] = {
        "event.dataset": "shadowai.model_file",
        "event.action": "discovered",
    }
    common.update({"host.name": host, "host.os.type": "linux", "agent.version": "0.1.0"})
    model: dict[str, object] = {
        **common,
        "file.path": "/home/dev/.cache/llama-3-8b-instruct.Q4_K_M.gguf",
        "file.size": 4_920_734_016,
        "file.hash.sha256": "ab" * 32,
        "ai.model.format": "gguf",
        "ai.model.name": "Meta-Llama-3-8B-Instruct",
        "ai.model.architecture": "llama",
        "ai.model.parameters": 8_030_261_248,
        "ai.model.quantization": "Q4_K_M",
    }
    hostile: dict[str, object] = {
        **common,
        "file.path": HOSTILE_PATH,
        "ai.model.name": "<b>bold</b>",
    }
    at = SEED_TIME + timedelta(minutes=5)
    events = [
        StoredEvent(seq, b"d%d" % seq, b"env", at, ev) for seq, ev in [(1, model), (2, hostile)]
    ]
    alert = NewAlert(
        "rule-unsafe-pickle",
        "Unapproved model format <pickle>",
        "high",
        agent_id,
        host,
        f"rule-unsafe-pickle|{agent_id}|{HOSTILE_PATH}",
        2,
        HOSTILE_PATH,
        at,
    )
    store.ingest(
        agent_id=agent_id,
        expected_last_seq=0,
        last_seq=2,
        last_digest=b"d2",
        events=events,
        gaps=[],
        alerts=[alert],
        now=at,
    )
    return SeededFleet(
        agent_id, host, str(model["file.path"]), HOSTILE_PATH, alert.rule_id, alert.rule_title
    )


@pytest.fixture
def seed_fleet() -> Callable[[Store], SeededFleet]:
    """Fills a store with a small fleet; a fixture so that test modules need not import."""
    return _seed
