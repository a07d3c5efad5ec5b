"""The database goes away while the collector runs, then comes back.

PostgreSQL is reached through a small TCP relay the test can cut: the collector sees what it
would see when the database host drops off the network.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from collector.governance import load_rule_dir
from collector.server import Running, start
from collector.store import Store
from tests.collector.conftest import POSTGRES_URL, _drop_schema
from tests.collector.service_kit import enroll
from wire import RETRY_PUSHBACK_METADATA

RULES = Path(__file__).resolve().parents[2] / "rules"


class Relay:
    """Forwards 127.0.0.1:port to the PostgreSQL server until cut; can be restored."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = self._listen(0)
        self.port = int(self._listener.getsockname()[1])

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return listener

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            server = socket.create_connection(self._target)
            with self._lock:
                self._sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            _shut(sock)

    def cut(self) -> None:
        _shut(self._listener)  # wakes the accept() (Linux)
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _shut(sock)
                sock.close()
            self._sockets.clear()

    def restore(self) -> None:
        self._listener = self._listen(self.port)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already shut by the other side
        sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def relayed() -> Iterator[tuple[Running, Store, Relay]]:
    relay = Relay(("127.0.0.1", 5432))
    schema = f"t_{secrets.token_hex(8)}"
    url = POSTGRES_URL.replace("127.0.0.1:5432", f"127.0.0.1:{relay.port}")
    store = Store.open(url, schema=schema)
    server = start(
        store=store,
        rules=load_rule_dir(RULES),
        grpc_address="127.0.0.1:0",
        http_address="127.0.0.1:0",
        pki=None,
    )
    try:
        yield server, store, relay
    finally:
        server.stop()
        store.close()
        relay.cut()
        _drop_schema(schema)


def test_losing_the_database_is_unavailable_not_a_crash(
    relayed: tuple[Running, Store, Relay],
) -> None:
    server, store, relay = relayed
    agent, channel = enroll(server, store)
    health = f"http://{server.http_address}/healthz"
    try:
        assert agent.send_next().accepted == 1
        relay.cut()

        response = httpx.get(health, timeout=30)
        assert response.status_code == 503
        assert response.json()["status"] == "unavailable"
        assert "connection" in response.json()["store"].lower()

        with pytest.raises(grpc.RpcError) as refused:
            agent.send_next()
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        trailers = dict(refused.value.trailing_metadata() or ())
        assert int(trailers[RETRY_PUSHBACK_METADATA]) > 0
        metrics = server.metrics.render().decode()
        assert "shadowai_store_up 0.0" in metrics
        assert "shadowai_store_errors_total 1.0" in metrics

        relay.restore()
        assert httpx.get(health, timeout=30).status_code == 200
        retried = agent.send_next()  # seq 2 again: the agent kept it
        assert (retried.accepted, retried.last_seq) == (1, 2)
    finally:
        channel.close()
