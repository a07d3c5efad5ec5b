"""Fixtures that start the real programs as processes."""

from __future__ import annotations

import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.collector.web.web_kit import log_in

BIN = Path(sys.executable).parent
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass
class Collector:
    proc: subprocess.Popen[str]
    data_dir: Path
    database: str
    grpc: str
    dashboard: str

    def cli(self, *args: str, stdin: str = "") -> str:
        cmd = [
            str(BIN / "shadowai-collector"),
            "--data-dir",
            str(self.data_dir),
            "--database",
            self.database,
            *args,
        ]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True, input=stdin)
        return done.stdout.strip()

    @contextmanager
    def signed_in(self, role: str = "viewer") -> Iterator[httpx.Client]:
        """A dashboard client logged in through the form as a new user made with the CLI."""
        password = secrets.token_urlsafe(18)
        username = f"e2e-{role}"
        self.cli("users", "create", "--username", username, "--role", role, stdin=password)
        with httpx.Client(base_url=self.dashboard, timeout=20) as client:
            reply = log_in(client, username, password)
            assert reply.status_code == 303, reply.text
            yield client


class AgentCli:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [str(BIN / "shadowai-agent"), "--data-dir", str(self.data_dir), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def agent(tmp_path: Path) -> AgentCli:
    return AgentCli(tmp_path / "agent")


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'collector.db'}"
        return
    schema = f"e2e_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def collector(tmp_path: Path, database: str) -> Iterator[Collector]:
    data_dir = tmp_path / "collector"
    rules = Path(__file__).resolve().parents[2] / "rules"
    proc = subprocess.Popen(
        [
            str(BIN / "shadowai-collector"),
            "serve",
            "--data-dir",
            str(data_dir),
            "--database",
            database,
            "--rules",
            str(rules),
            "--grpc",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first, second = proc.stdout.readline().strip(), proc.stdout.readline().strip()
    if not first.startswith("grpc listening on "):
        proc.kill()
        pytest.fail(f"collector did not start: {first!r} {proc.communicate()[1][-2000:]}")
    yield Collector(proc, data_dir, database, first.rsplit(" ", 1)[1], second.rsplit(" ", 1)[1])
    proc.terminate()
    try:
        proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()
