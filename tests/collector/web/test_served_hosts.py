"""The started collector's dashboard answers only to the names and port it serves, over a
real uvicorn socket: a DNS-rebinding page's Host is refused before anything else runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from collector.governance import load_rule_dir
from collector.server import Running, start
from collector.store import Store
from collector.web.session import AccessSettings

RULES = Path(__file__).resolve().parents[3] / "rules"


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    server = start(
        store=store,
        rules=load_rule_dir(RULES),
        grpc_address="127.0.0.1:0",
        http_address="127.0.0.1:0",
        pki=None,
        access=AccessSettings(cookie_secure=True),
        allowed_hosts=["collector.example", "proxy.example:8443"],
    )
    yield server
    server.stop()
    store.close()


def _status(running: Running, host: str, path: str = "/login") -> int:
    reply = httpx.get(
        f"http://{running.http_address}{path}", headers={"host": host}, follow_redirects=False
    )
    return reply.status_code


def test_the_bound_port_and_the_given_names_are_served(running: Running) -> None:
    port = running.http_address.rsplit(":", 1)[1]
    for host in [
        f"127.0.0.1:{port}",
        f"localhost:{port}",
        "collector.example",
        "proxy.example:8443",
    ]:
        assert _status(running, host) == 200, host


def test_other_names_and_ports_are_refused(running: Running) -> None:
    port = int(running.http_address.rsplit(":", 1)[1])
    for host in [
        f"127.0.0.1:{port + 1}",
        "127.0.0.1",
        f"rebind.evil.example:{port}",
        "proxy.example",
    ]:
        assert _status(running, host) == 421, host
        assert _status(running, host, "/api/v1/hosts") == 421, host


def test_secure_settings_reach_the_served_app(running: Running) -> None:
    reply = httpx.get(f"http://{running.http_address}/login")
    assert reply.headers["set-cookie"].startswith("__Host-shadowai_login=")
    assert reply.headers["strict-transport-security"] == "max-age=31536000"
