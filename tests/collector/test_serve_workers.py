"""`serve --workers 2`: a real collector and its worker process share the gRPC ports over
one database (SQLite and PostgreSQL); agents on both processes lose nothing, a killed
worker is restarted, and stopping or killing the parent leaves no worker behind."""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import psutil
import pytest
from sqlalchemy import create_engine, text

from bench.fleet import _csr
from bench.fleet_agent import SimAgent
from tests.collector.conftest import POSTGRES_URL
from tests.e2e.delivery_kit import BIN, RULES
from wire import tokens
from wire.envelope import raw_public_key
from wire.v1 import collector_pb2, collector_pb2_grpc
from wire.v1.events_pb2 import Event, ModelFile

AGENTS_AT_MOST = 24  # enough for both processes to hold a connection (each 1 in 2)


@dataclass
class Served:
    """`shadowai-collector serve --workers 2` on ports chosen by the system."""

    proc: subprocess.Popen[str]
    grpc: str
    mtls_port: int
    data_dir: Path
    database: str
    token: str
    log: Path

    def children(self) -> list[int]:
        return [child.pid for child in psutil.Process(self.proc.pid).children()]

    def connections(self) -> dict[int, int]:
        """Agents' connections on the mTLS port, by the pid of the process holding them."""
        held = {}
        for pid in [self.proc.pid, *self.children()]:
            held[pid] = sum(
                1
                for c in psutil.Process(pid).net_connections(kind="tcp")
                if c.laddr and c.laddr.port == self.mtls_port and c.status == "ESTABLISHED"
            )
        return held

    def listening(self, pid: int) -> bool:
        conns = psutil.Process(pid).net_connections(kind="tcp")
        return any(c.laddr.port == self.mtls_port and c.status == "LISTEN" for c in conns)


def serve(data_dir: Path, database: str, log: Path, rules: Path = RULES) -> Served:
    common = [str(BIN / "shadowai-collector"), "--data-dir", str(data_dir), "--database", database]
    token = subprocess.run(
        [*common, "tokens", "create", "--uses", str(AGENTS_AT_MOST)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    cmd = [*common, "serve", "--workers", "2", "--rules", str(rules), "--enroll-rate", "1e6"]
    cmd += ["--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"]
    with log.open("w") as errors:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors, text=True)
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(3)]
    assert lines[0].startswith("grpc listening on "), lines
    assert lines[2].startswith("grpc mtls listening on "), lines
    grpc_address = lines[0].split()[-1]
    mtls_port = int(lines[2].split(":")[-1])
    return Served(proc, grpc_address, mtls_port, data_dir, database, token, log)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'c' / 'collector.db'}"
        return
    schema = f"workers_{secrets.token_hex(6)}"
    engine = create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture
def served(tmp_path: Path, database: str) -> Iterator[Served]:
    rules = tmp_path / "rules"  # a copy: a test may add a rule while the collector runs
    shutil.copytree(RULES, rules)
    running = serve(tmp_path / "c", database, tmp_path / "serve.log", rules)
    try:
        yield running
    finally:
        _stop(running.proc)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Agent:
    """One enrolled agent with its own mTLS connection; it resends until acknowledged."""

    sim: SimAgent
    stub: collector_pb2_grpc.CollectorStub
    channel: grpc.Channel
    failures: int = 0
    errors: list[str] = field(default_factory=list)

    def push(self, deadline: float = 60.0) -> None:
        """Send everything pending, retrying on any RPC error as the real agent does."""
        give_up = time.monotonic() + deadline
        while self.sim.pending:
            request = collector_pb2.PublishRequest(envelopes=[p.envelope for p in self.sim.pending])
            try:
                reply = self.stub.Publish(request, timeout=20, wait_for_ready=True)
            except grpc.RpcError as exc:
                self.failures += 1
                if time.monotonic() > give_up:
                    raise AssertionError(f"{self.sim.agent_id}: still failing: {exc}") from None
                time.sleep(0.1)
                continue
            assert not reply.rejections, reply.rejections
            assert reply.last_seq == self.sim.seq
            self.sim.settle(len(self.sim.pending))


def enroll(served: Served, index: int) -> Agent:
    token = tokens.parse(served.token)
    ca = (served.data_dir / "pki" / "ca.pem").read_bytes()
    sim = SimAgent(index, random.Random(index))
    sim.models = 5
    csr, key_pem = _csr(sim.agent_id)
    with grpc.secure_channel(served.grpc, grpc.ssl_channel_credentials(ca)) as channel:
        reply = collector_pb2_grpc.CollectorStub(channel).Enroll(
            collector_pb2.EnrollRequest(
                token_id=token.token_id,
                token_secret=token.secret.encode(),
                public_key=raw_public_key(sim.key.public_key()),
                host_name=sim.host_name,
                host_os_type="linux",
                csr_pem=csr,
            ),
            timeout=20,
        )
    creds = grpc.ssl_channel_credentials(ca, key_pem, reply.client_cert_pem)
    mtls = grpc.secure_channel(f"127.0.0.1:{reply.mtls_port}", creds)
    return Agent(sim, collector_pb2_grpc.CollectorStub(mtls), mtls)


def agents_on_both(served: Served, at_least: int) -> list[Agent]:
    """Enroll and boot agents (each its own connection) until both processes hold some."""
    agents: list[Agent] = []
    while len(agents) < at_least or 0 in served.connections().values():
        assert len(agents) < AGENTS_AT_MOST, served.connections()
        agent = enroll(served, len(agents))
        agent.sim.append(agent.sim.snapshot())
        agent.push()
        agents.append(agent)
    return agents


def burst(agents: list[Agent], batches: int, size: int) -> Callable[[], None]:
    """Every agent pushes `batches` batches of `size` new models, each on its own thread;
    the returned join raises the first failure."""
    errors: list[BaseException] = []

    def run(agent: Agent) -> None:
        try:
            for _ in range(batches):
                sim = agent.sim
                sim.append([sim.model_event(sim.models + n) for n in range(size)])
                sim.models += size
                agent.push()
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(agent,)) for agent in agents]
    for thread in threads:
        thread.start()

    def join() -> None:
        for thread in threads:
            thread.join(180)
        assert not errors, errors

    return join


def assert_every_event_stored_once(database: str, agents: list[Agent]) -> None:
    engine = create_engine(database)
    try:
        with engine.connect() as conn:
            rows = [
                (str(a), int(s)) for a, s in conn.execute(text("SELECT agent_id, seq FROM events"))
            ]
    finally:
        engine.dispose()
    assert len(rows) == len(set(rows)), "an event stored twice"
    for agent in agents:
        seqs = sorted(s for a, s in rows if a == agent.sim.agent_id)
        assert seqs == list(range(1, agent.sim.seq + 1)), agent.sim.agent_id


def test_two_processes_share_the_ports_and_store_every_event_once(
    served: Served, database: str
) -> None:
    agents = agents_on_both(served, at_least=6)
    burst(agents, batches=5, size=20)()
    assert len(served.children()) == 1
    assert all(count > 0 for count in served.connections().values())
    assert_every_event_stored_once(database, agents)


def test_a_worker_killed_mid_burst_loses_nothing_and_is_restarted(
    served: Served, database: str
) -> None:
    agents = agents_on_both(served, at_least=6)
    (worker,) = served.children()
    join = burst(agents, batches=30, size=25)
    time.sleep(1.0)
    os.kill(worker, signal.SIGKILL)
    join()
    assert sum(agent.failures for agent in agents) >= 1  # some agents were on the worker
    assert_every_event_stored_once(database, agents)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = served.children()
        if children and children != [worker] and served.listening(children[0]):
            break
        time.sleep(0.2)
    assert children != [worker] and served.listening(children[0])


FRESH_ID = "0b7c2d4e-5f60-4a1b-8c2d-3e4f5a6b7c8d"
FRESH_RULE = f"""title: Model under /opt/fresh
id: {FRESH_ID}
status: test
logsource:
  product: shadowai
  category: model_file
detection:
  fresh:
    file.path|startswith: /opt/fresh/
  condition: fresh
level: medium
"""


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_rule_added_while_serving_is_loaded_by_every_process(
    served: Served, database: str, tmp_path: Path
) -> None:
    agents = agents_on_both(served, at_least=4)
    (tmp_path / "rules" / "fresh.yml").write_text(FRESH_RULE)
    deadline = time.monotonic() + 30
    while served.log.read_text().count("rules reloaded") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert served.log.read_text().count("rules reloaded") == 2  # the parent and the worker
    for agent in agents:
        now = int(time.time() * 1000)
        model = ModelFile(path="/opt/fresh/m.gguf", format="gguf")
        host = agent.sim.host_name
        agent.sim.append(
            [Event(timestamp_ms=now, host_name=host, action="discovered", model_file=model)]
        )
        agent.push()
    engine = create_engine(database)
    try:
        with engine.connect() as conn:
            query = text("SELECT agent_id FROM alerts WHERE rule_id = :r")
            alerted = {str(a) for (a,) in conn.execute(query, {"r": FRESH_ID})}
    finally:
        engine.dispose()
    assert alerted == {agent.sim.agent_id for agent in agents}


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_stopping_or_killing_the_parent_leaves_no_worker(served: Served, how: int) -> None:
    (worker,) = served.children()
    served.proc.send_signal(how)
    assert served.proc.wait(20) == (0 if how == signal.SIGTERM else -how)
    deadline = time.monotonic() + 20
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
