"""Two collector processes on one PostgreSQL database: agents move between them mid-stream,
a replica killed during a burst loses nothing, and a correlation over hosts split between
them alerts once (issue 13, item 2)."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TypeVar

import grpc
import psycopg
import pytest

from bench.fleet import _csr
from bench.fleet_agent import Pending, SimAgent
from tests.e2e.delivery_kit import RULES, Restartable
from wire import tokens
from wire.envelope import raw_public_key
from wire.v1 import collector_pb2, collector_pb2_grpc
from wire.v1.events_pb2 import Envelope, Event, ModelFile

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
T = TypeVar("T")


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[Restartable, Restartable, str, str]]:
    """Two collectors sharing one data dir (one CA) and one PostgreSQL schema."""
    schema = f"replicas_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    a, b = Restartable(tmp_path / "c", url), Restartable(tmp_path / "c", url)
    token = a.cli("tokens", "create", "--uses", "8")
    a.start()
    b.start()
    try:
        yield a, b, token, schema
    finally:
        a.stop()
        b.stop()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


class Endpoint:
    """One agent's mTLS connection to one replica."""

    def __init__(self, replica: Restartable, creds: grpc.ChannelCredentials) -> None:
        self.channel = grpc.secure_channel(f"127.0.0.1:{replica.mtls_port}", creds)
        self.stub = collector_pb2_grpc.CollectorStub(self.channel)

    def publish(self, agent: SimAgent, count: int) -> collector_pb2.PublishResponse:
        """Send, and resend as the agent does when the other replica won the race (ABORTED)."""
        request = collector_pb2.PublishRequest(
            envelopes=[p.envelope for p in agent.pending[:count]]
        )
        self.aborted = 0
        while True:
            try:
                reply: collector_pb2.PublishResponse = self.stub.Publish(request, timeout=20)
                return reply
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.ABORTED or self.aborted > 10:
                    raise
                self.aborted += 1


def enroll(
    a: Restartable, b: Restartable, token_text: str, index: int
) -> tuple[SimAgent, list[Endpoint]]:
    """Enroll at replica `a`; the client certificate works at both (one CA)."""
    replica = a
    token = tokens.parse(token_text)
    ca = (replica.data_dir / "pki" / "ca.pem").read_bytes()
    agent = SimAgent(index, random.Random(index))
    csr, key_pem = _csr(agent.agent_id)
    with grpc.secure_channel(replica.grpc, grpc.ssl_channel_credentials(ca)) as channel:
        reply = collector_pb2_grpc.CollectorStub(channel).Enroll(
            collector_pb2.EnrollRequest(
                token_id=token.token_id,
                token_secret=token.secret.encode(),
                public_key=raw_public_key(agent.key.public_key()),
                host_name=agent.host_name,
                host_os_type="linux",
                csr_pem=csr,
            ),
            timeout=20,
            wait_for_ready=True,  # a replica that just printed its ports may still be settling
        )
    creds = grpc.ssl_channel_credentials(ca, key_pem, reply.client_cert_pem)
    return agent, [Endpoint(a, creds), Endpoint(b, creds)]


def stored(schema: str, table: str, column: str) -> list[tuple[str, object]]:
    with psycopg.connect(PG_URL) as conn:
        rows = conn.execute(f'SELECT agent_id, {column} FROM "{schema}".{table}').fetchall()
    return [(str(r[0]), r[1]) for r in rows]


def assert_every_event_stored_once(schema: str, agents: list[SimAgent]) -> None:
    rows = stored(schema, "events", "seq")
    assert len(rows) == len(set(rows)), "an event stored twice"
    for agent in agents:
        seqs = sorted(int(str(s)) for a, s in rows if a == agent.agent_id)
        assert seqs == list(range(1, agent.seq + 1)), agent.agent_id


def test_agents_moving_between_replicas_mid_stream_store_every_event_once(
    replicas: tuple[Restartable, Restartable, str, str],
) -> None:
    a, b, token, schema = replicas
    agents = [enroll(a, b, token, i) for i in range(4)]
    for round_ in range(6):
        for agent, ends in agents:
            agent.append(agent.snapshot() if round_ == 0 else agent.scan_pass())
            count = len(agent.pending)
            # Half of the batches go to both replicas at once: racing writers of one chain.
            targets = ends if round_ % 2 else [ends[(round_ // 2 + agent.index) % 2]]
            replies = _concurrently([partial(e.publish, agent, count) for e in targets])
            for reply in replies:
                assert not reply.rejections
                assert reply.last_seq == agent.seq
            assert sum(r.duplicates for r in replies) == count * (len(targets) - 1)
            agent.settle(count)
    assert_every_event_stored_once(schema, [agent for agent, _ in agents])
    # One forked envelope per agent, sent to both replicas at once: one alert each, not two.
    for agent, ends in agents:
        fork = agent.bad_envelope("forked")
        agent.pending.insert(0, _pending(fork))
        for reply in _concurrently([partial(e.publish, agent, 1) for e in ends]):
            assert [r.code for r in reply.rejections] == ["fork"]
        agent.pending.pop(0)
    # Both refusals reach the one alert of each agent (same dedup key), not two alerts. The
    # second counts again only if its replica already saw the first's refusal counter (a
    # changed observation); racing, it may repeat an unchanged one, which does not count.
    chain_rules = {
        _rule_id("shadowai_agent_chain_fork"),
        _rule_id("shadowai_agent_cloned_identity"),
    }
    with psycopg.connect(PG_URL) as conn:
        rows = conn.execute(f'SELECT agent_id, rule_id, count FROM "{schema}".alerts').fetchall()
    alerts = [(str(a), n) for a, rule, n in rows if rule in chain_rules]
    assert sorted(a for a, _ in alerts) == sorted(agent.agent_id for agent, _ in agents)
    assert {int(str(n)) for _, n in alerts} <= {1, 2}


def test_a_replica_killed_during_a_burst_loses_nothing(
    replicas: tuple[Restartable, Restartable, str, str],
) -> None:
    a, b, token, schema = replicas
    agents = [enroll(a, b, token, i) for i in range(4)]
    failovers = [0]

    def burst(agent: SimAgent, ends: list[Endpoint]) -> None:
        current = 0
        for _ in range(40):
            agent.append([agent.model_event(agent.models + n) for n in range(25)])
            agent.models += 25
            while agent.pending:
                try:
                    reply = ends[current].publish(agent, len(agent.pending))
                except grpc.RpcError:
                    current, failovers[0] = 1 - current, failovers[0] + 1
                    time.sleep(0.1)
                    continue
                assert not reply.rejections, reply.rejections
                agent.settle(len(agent.pending))

    errors: list[BaseException] = []

    def guarded(agent: SimAgent, ends: list[Endpoint]) -> None:
        try:
            burst(agent, ends)
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=pair) for pair in agents]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    a.kill()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert failovers[0] >= 1
    assert_every_event_stored_once(schema, [agent for agent, _ in agents])


# "Same unapproved model on many hosts": one digest on 5 or more agents within a day.
MANY_HOSTS = "shadowai_unapproved_model_on_many_hosts"
HOSTS_NEEDED = 5


def test_a_correlation_over_hosts_split_between_replicas_alerts_exactly_once(
    replicas: tuple[Restartable, Restartable, str, str],
) -> None:
    a, b, token, schema = replicas
    agents = [enroll(a, b, token, i) for i in range(HOSTS_NEEDED)]
    digests = [f"{trial:02x}" * 32 for trial in range(1, 21)]
    for trial, digest in enumerate(digests):
        for agent, _ in agents:
            _report(agent, digest)
        # The first hosts report one after the other, alternating replicas; the last two
        # report at the same moment, one to each replica, in all trials but the first.
        together = 2 if trial else 0
        for index, (agent, ends) in enumerate(agents[: HOSTS_NEEDED - together]):
            _send(ends[(index + trial) % 2], agent)
        last = agents[HOSTS_NEEDED - together :]
        _concurrently([partial(_send, ends[n % 2], agent) for n, (agent, ends) in enumerate(last)])
    # On PostgreSQL the two racing batches both recount the digest's model_digests row, and
    # the row lock orders them, so the second one's tally sees the first one's match.
    with psycopg.connect(PG_URL) as conn:
        rows = conn.execute(
            f'SELECT summary FROM "{schema}".alerts WHERE rule_id = %s', (_rule_id(MANY_HOSTS),)
        ).fetchall()
    fired = sorted(
        str(summary).split(":")[0].removeprefix("file.hash.sha256=") for (summary,) in rows
    )
    assert fired == digests  # each digest once: none missing, none twice


def _report(agent: SimAgent, digest: str) -> None:
    """One model file, not on the approved lists, with this content digest."""
    model = ModelFile(path=f"/opt/models/{digest[:8]}.gguf", format="gguf", sha256=digest)
    now = int(time.time() * 1000)
    agent.append(
        [Event(timestamp_ms=now, host_name=agent.host_name, action="discovered", model_file=model)]
    )


def _send(end: Endpoint, agent: SimAgent) -> None:
    reply = end.publish(agent, len(agent.pending))
    assert not reply.rejections and reply.last_seq == agent.seq
    agent.settle(len(agent.pending))


def _rule_id(name: str) -> str:
    text = (RULES / f"{name}.yml").read_text()
    return next(
        line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("id:")
    )


def _concurrently(calls: list[Callable[[], T]]) -> list[T]:
    results: list[T] = []
    errors: list[BaseException] = []

    def run(call: Callable[[], T]) -> None:
        try:
            results.append(call())
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if errors:
        raise errors[0]
    return results


def _pending(env: Envelope) -> Pending:
    return Pending(env, time.monotonic(), 0, b"")
