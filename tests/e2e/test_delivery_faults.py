"""Delivery under faults, with the real programs: every event is stored exactly once, or
refused with the right reason and surfaced (API, collector events, alerts, agent status)."""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from delivery_kit import BIN, Api, Restartable, WireAgent, running_collector, write_gguf

pytestmark = pytest.mark.e2e

CLONE_RULE = "Agent identity used by two machines (cloned disk image or copied data dir)"
CLOCK_RULE = "Agent clock outside the accepted window"


@pytest.fixture
def server(tmp_path: Path, database: str) -> Iterator[Restartable]:
    yield from running_collector(tmp_path, database)


def agent_cli(data_dir: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    cmd = [str(BIN / "shadowai-agent"), "--data-dir", str(data_dir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def run_once(data_dir: Path, models: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return agent_cli(data_dir, "run", "--once", "--path", str(models), "--timeout", "90", *extra)


def enrolled(server: Restartable, data_dir: Path) -> str:
    token = server.cli("tokens", "create")
    result = agent_cli(data_dir, "enroll", "--collector", server.grpc, "--token", token)
    assert result.returncode == 0, result.stderr
    return json.loads(agent_cli(data_dir, "status").stdout)["agent_id"]  # type: ignore[no-any-return]


def api(server: Restartable) -> Api:
    return Api(server.dashboard, server.cli("api-tokens", "create", "--role", "viewer"))


def models_dir(tmp_path: Path, names: list[str], folder: str = "models") -> Path:
    models = tmp_path / folder
    models.mkdir(exist_ok=True)
    for name in names:
        write_gguf(models / name, name)
    return models


def model_events(view: Api, agent_id: str) -> list[dict[str, Any]]:
    events = view.items("api/v1/events", limit=1000, dataset="shadowai.model_file")
    return [e for e in events if e.get("agent_id") == agent_id]


def test_a_spool_deleted_after_an_outage_converges_to_what_is_on_disk(
    server: Restartable, tmp_path: Path
) -> None:
    data = tmp_path / "agent"
    agent_id = enrolled(server, data)
    models = models_dir(tmp_path, ["a.gguf"])
    assert run_once(data, models).returncode == 0
    write_gguf(models / "b.gguf", "b")
    assert server.proc is not None
    server.proc.send_signal(signal.SIGSTOP)  # an outage: b.gguf waits in the spool
    try:
        away = run_once(data, models, "--timeout", "2")
    finally:
        server.proc.send_signal(signal.SIGCONT)
    assert away.returncode == 75, away.stderr
    assert "gave up" in away.stderr
    for name in ("spool.db", "spool.db-wal", "spool.db-shm"):
        (data / name).unlink(missing_ok=True)
    again = run_once(data, models)
    assert again.returncode == 0, again.stderr
    view = api(server)
    assert view.models() == [str(models / "a.gguf"), str(models / "b.gguf")]
    assert view.items("api/v1/refusals", agent_id=agent_id) == []
    status = json.loads(agent_cli(data, "status").stdout)
    assert status["spool_pending"] == 0 and status["needs_resync"] is False


def test_a_corrupt_spool_is_moved_aside_reported_and_the_agent_ships(
    server: Restartable, tmp_path: Path
) -> None:
    data = tmp_path / "agent"
    agent_id = enrolled(server, data)
    models = models_dir(tmp_path, ["a.gguf"])
    assert run_once(data, models).returncode == 0
    (data / "spool.db").write_bytes(b"not a database at all " * 512)
    result = run_once(data, models)
    assert result.returncode == 0, result.stderr
    assert list(data.glob("spool.db.corrupt-*"))
    assert (data / "spool.db").stat().st_mode & 0o077 == 0
    health = api(server).items("api/v1/events", limit=100, dataset="shadowai.agent_health")
    resets = [
        e["event"].get("agent.health.spool_resets")
        for e in health
        if e.get("agent_id") == agent_id and "event" in e
    ]
    assert 1 in resets, health


def test_envelopes_out_of_order_are_all_stored_once(server: Restartable) -> None:
    wire = WireAgent.enroll(server, server.cli("tokens", "create"))
    one, two, three = (wire.envelope(f"/m/{n}.gguf") for n in (1, 2, 3))
    assert wire.publish(one).accepted == 1
    assert wire.publish(three).accepted == 1
    assert wire.publish(two).accepted == 1
    assert wire.publish(two).duplicates == 1
    assert [m for m in api(server).models() if m.startswith("/m/")] == [
        "/m/1.gguf",
        "/m/2.gguf",
        "/m/3.gguf",
    ]


def test_a_clock_an_hour_ahead_is_refused_surfaced_and_does_not_block(
    server: Restartable,
) -> None:
    wire = WireAgent.enroll(server, server.cli("tokens", "create"))
    skewed = wire.envelope("/m/future.gguf", ahead_ms=3600 * 1000)
    after = wire.envelope("/m/now.gguf")
    reply = wire.publish(skewed, after)
    assert [(r.code, r.seq) for r in reply.rejections] == [("clock", 1)]
    assert reply.accepted == 1
    view = api(server)
    assert "/m/now.gguf" in view.models() and "/m/future.gguf" not in view.models()
    (refused,) = view.items("api/v1/refusals", agent_id=wire.agent_id)
    assert refused["code"] == "clock"
    reasons = [e["event.reason"] for e in view.items("api/v1/collector-events")]
    assert "clock_skew" in reasons
    assert CLOCK_RULE in {a["rule_title"] for a in view.items("api/v1/alerts")}
    (agent,) = [a for a in view.items("api/v1/agents") if a["agent_id"] == wire.agent_id]
    assert agent["delivery"]["refused.clock"] == 1


def test_a_cloned_data_dir_sending_beside_the_original_is_caught(
    server: Restartable, tmp_path: Path
) -> None:
    original = tmp_path / "agent"
    agent_id = enrolled(server, original)
    assert run_once(original, models_dir(tmp_path, ["shared.gguf"])).returncode == 0
    clone = tmp_path / "clone"
    shutil.copytree(original, clone)
    mine = models_dir(tmp_path, ["mine.gguf"], "mine")
    theirs = models_dir(tmp_path, ["theirs.gguf"], "theirs")
    cmd = [str(BIN / "shadowai-agent"), "run", "--once", "--timeout", "90", "--path"]
    runs = [
        subprocess.Popen([*cmd, str(root), "--data-dir", str(d)], stderr=subprocess.PIPE)
        for root, d in ((mine, original), (theirs, clone))
    ]
    for proc in runs:
        proc.wait(120)
    view = api(server)
    refusals = view.items("api/v1/refusals", agent_id=agent_id)
    assert refusals and {r["code"] for r in refusals} <= {"fork", "replay_mismatch"}
    assert "cloned_identity" in {e["event.reason"] for e in view.items("api/v1/collector-events")}
    alerts = [a for a in view.items("api/v1/alerts") if a["rule_title"] == CLONE_RULE]
    assert alerts and alerts[0]["agent_id"] == agent_id
    # What was not refused is stored once: the seqs of stored events are unique.
    seqs = [e["seq"] for e in view.items("api/v1/events", limit=1000) if e["agent_id"] == agent_id]
    assert len(seqs) == len(set(seqs))
    quarantined = sum(
        len(json.loads(agent_cli(d, "status").stdout)["refused_envelopes"])
        for d in (original, clone)
    )
    assert quarantined == len(refusals)


def test_a_revoked_agent_stops_says_so_and_cannot_enroll_again(
    server: Restartable, tmp_path: Path
) -> None:
    data = tmp_path / "agent"
    agent_id = enrolled(server, data)
    models = models_dir(tmp_path, ["a.gguf"])
    assert run_once(data, models).returncode == 0
    server.cli("agents", "revoke", agent_id)
    refused = run_once(data, models)
    assert refused.returncode == 3
    assert "revoked" in refused.stderr
    assert json.loads(agent_cli(data, "status").stdout)["revoked"] is True
    token = server.cli("tokens", "create")
    again = agent_cli(data, "enroll", "--collector", server.grpc, "--token", token)
    assert again.returncode == 2 and "revoked" in again.stderr
    (listed,) = [
        json.loads(line)
        for line in server.cli("tokens", "list").splitlines()
        if json.loads(line)["token_id"] in token
    ]
    assert listed["uses"] == 0  # the refusal did not spend the token


def test_the_collector_sigkilled_mid_batch_several_times_loses_and_doubles_nothing(
    server: Restartable, tmp_path: Path
) -> None:
    data = tmp_path / "agent"
    agent_id = enrolled(server, data)
    names = [f"m{i:03d}.gguf" for i in range(120)]
    models = models_dir(tmp_path, names)
    rng = random.Random(8)
    cmd = [str(BIN / "shadowai-agent"), "--data-dir", str(data), "run", "--once"]
    run = subprocess.Popen(
        [*cmd, "--path", str(models), "--timeout", "240"],
        stderr=subprocess.PIPE,
        text=True,
    )
    for _ in range(3):
        time.sleep(rng.uniform(0.2, 1.5))
        server.kill()
        time.sleep(rng.uniform(0.1, 0.5))
        server.start()
    _, err = run.communicate(timeout=280)
    assert run.returncode == 0, err[-3000:]
    view = api(server)
    assert view.models() == [str(models / n) for n in names]
    per_path: dict[str, int] = {}
    for event in model_events(view, agent_id):
        path = str(event["event"]["file.path"])
        per_path[path] = per_path.get(path, 0) + 1
    assert set(per_path.values()) == {1}, per_path
    assert view.items("api/v1/refusals", agent_id=agent_id) == []


def test_an_agent_sigkilled_at_random_points_many_times_loses_and_forks_nothing(
    server: Restartable, tmp_path: Path
) -> None:
    data = tmp_path / "agent"
    agent_id = enrolled(server, data)
    names = [f"k{i:02d}.gguf" for i in range(40)]
    models = models_dir(tmp_path, names)
    rng = random.Random(15)
    cmd = [str(BIN / "shadowai-agent"), "--data-dir", str(data), "run", "--once"]
    for round_ in range(12):
        if round_ % 3 == 0:
            write_gguf(models / f"new{round_}.gguf", f"new{round_}")
            names.append(f"new{round_}.gguf")
        proc = subprocess.Popen([*cmd, "--path", str(models)], stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 2.5))
        proc.kill()
        proc.wait(10)
    final = run_once(data, models)
    assert final.returncode == 0, final.stderr[-3000:]
    view = api(server)
    assert view.models() == sorted(str(models / n) for n in names)
    assert view.items("api/v1/refusals", agent_id=agent_id) == []
    status = json.loads(agent_cli(data, "status").stdout)
    assert status["spool_pending"] == 0 and status["refused_envelopes"] == []


def test_publishing_needs_the_agents_own_client_certificate(server: Restartable) -> None:
    import grpc

    from wire.v1 import collector_pb2, collector_pb2_grpc

    first = WireAgent.enroll(server, server.cli("tokens", "create"))
    second = WireAgent.enroll(server, server.cli("tokens", "create"))
    ca = (server.data_dir / "pki" / "ca.pem").read_bytes()
    plain = grpc.secure_channel(server.grpc, grpc.ssl_channel_credentials(ca))
    request = collector_pb2.PublishRequest(envelopes=[first.envelope("/m/x.gguf")])
    with pytest.raises(grpc.RpcError) as without:
        collector_pb2_grpc.CollectorStub(plain).Publish(request, timeout=20)
    assert without.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as borrowed:
        second.stub.Publish(request, timeout=20)
    assert borrowed.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert first.stub.Publish(request, timeout=20).accepted == 1


def wait_for(condition: Any, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return False


def test_a_spool_deleted_under_the_running_daemon_is_replaced_and_converges(
    server: Restartable, tmp_path: Path
) -> None:
    data = tmp_path / "agent"
    agent_id = enrolled(server, data)
    models = models_dir(tmp_path, ["a.gguf"])
    view = api(server)
    cmd = [str(BIN / "shadowai-agent"), "--data-dir", str(data), "run", "--path", str(models)]
    daemon = subprocess.Popen([*cmd, "--interval", "3"], stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: view.models() == [str(models / "a.gguf")])
        for name in ("spool.db", "spool.db-wal", "spool.db-shm"):
            (data / name).unlink(missing_ok=True)
        write_gguf(models / "b.gguf", "b")
        expected = [str(models / "a.gguf"), str(models / "b.gguf")]
        assert wait_for(lambda: view.models() == expected), view.models()

        def reset_reported() -> bool:
            health = view.items("api/v1/events", limit=200, dataset="shadowai.agent_health")
            return any(
                e["agent_id"] == agent_id and e["event"].get("agent.health.spool_resets") == 1
                for e in health
            )

        assert wait_for(reset_reported)
        assert (data / "spool.db").exists()
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err[-3000:]
    assert "deleted or replaced" in err
    assert view.items("api/v1/refusals", agent_id=agent_id) == []
