"""Two collector replicas on two addresses behind HAProxy (TCP mode) sharing one PostgreSQL
database: the fleet simulator goes through the balancer while one replica is SIGKILLed."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.e2e.delivery_kit import BIN, RULES, free_port

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

CONFIG = """\
global
    maxconn 4000
defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 3
    option redispatch
frontend grpc
    bind 127.0.0.1:{grpc}
    default_backend grpc
frontend mtls
    bind 127.0.0.1:{mtls}
    default_backend mtls
backend grpc
    balance roundrobin
    server a 127.0.0.2:{grpc} check inter 300ms fall 1 rise 2
    server b 127.0.0.3:{grpc} check inter 300ms fall 1 rise 2
backend mtls
    balance roundrobin
    server a 127.0.0.2:{mtls} check inter 300ms fall 1 rise 2
    server b 127.0.0.3:{mtls} check inter 300ms fall 1 rise 2
"""


@pytest.fixture
def database() -> Iterator[str]:
    schema = f"lb_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _two_free_ports() -> int:
    """A port P with P + 1 free too, on every address used here."""
    for _ in range(50):
        port = free_port()
        try:
            for host in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
                for p in (port, port + 1):
                    with socket.socket() as s:
                        s.bind((host, p))
        except OSError:
            continue
        return port
    raise AssertionError("no two free ports in a row")


def _collector(data_dir: Path, database: str, *args: str) -> list[str]:
    return [
        str(BIN / "shadowai-collector"),
        "--data-dir",
        str(data_dir),
        "--database",
        database,
        *args,
    ]


def _replica(data_dir: Path, database: str, host: str, grpc: int) -> subprocess.Popen[str]:
    """A replica on its own address with the balancer's port numbers, so that the mTLS port
    it tells agents at enrollment is the balancer's too."""
    cmd = _collector(data_dir, database, "serve", "--rules", str(RULES))
    cmd += ["--grpc", f"{host}:{grpc}", "--grpc-mtls", f"{host}:{grpc + 1}"]
    cmd += ["--http", f"127.0.0.1:{free_port()}", "--enroll-rate", "100000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("grpc listening"), line
    return proc


def test_a_fleet_behind_haproxy_loses_nothing_when_a_replica_dies(
    tmp_path: Path, database: str
) -> None:
    data_dir = tmp_path / "collector"
    token = subprocess.run(
        _collector(data_dir, database, "tokens", "create", "--uses", "10"),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    grpc = _two_free_ports()
    config = tmp_path / "haproxy.cfg"
    config.write_text(CONFIG.format(grpc=grpc, mtls=grpc + 1))
    replicas = [_replica(data_dir, database, h, grpc) for h in ("127.0.0.2", "127.0.0.3")]
    balancer = subprocess.Popen([HAPROXY, "-f", str(config), "-db"], stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)  # the balancer's first health checks
        assert balancer.poll() is None, balancer.communicate()[1]
        cmd = [sys.executable, "-m", "bench.fleet", "--collector", f"127.0.0.1:{grpc}"]
        cmd += ["--token", token, "--agents", "10", "--duration", "8", "--speedup", "100"]
        cmd += ["--boot-storm", "1", "--bad-share", "0.02", "--database", database]
        fleet = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(4.0)
        replicas[0].kill()
        out, err = fleet.communicate(timeout=240)
    finally:
        balancer.terminate()
        balancer.wait(10)
        for proc in replicas:
            proc.terminate()
            proc.wait(15)
    assert out.strip(), err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert fleet.returncode == 0, err[-2000:]
    assert result["agents"] == 10 and result["pending"] == 0
    assert result["lost"] == 0 and result["duplicates"] == 0
    assert result["stored"] == result["acked"] and result["good_refused"] == 0
    assert result["bad_wrong"] == [] and result["replays_not_duplicate"] == 0
