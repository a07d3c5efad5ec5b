"""Real SIEM listeners for the forwarding tests: a Splunk-HEC-compatible HTTPS server and a
syslog-over-TLS (RFC 5425, octet counting) server, each on a port that can be stopped and
started again on the same port.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from collector.pki import make_ca, make_server_cert


@dataclass(frozen=True)
class TestPki:
    __test__ = False  # a fixture value, not a test class

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_pki(directory: Path) -> TestPki:
    now = dt.datetime.now(dt.UTC)
    ca_pem, ca_key = make_ca(now)
    cert, key = make_server_cert(ca_pem, ca_key, ["localhost", "127.0.0.1"], now)
    paths = TestPki(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    paths.ca_file.write_bytes(ca_pem)
    paths.cert_file.write_bytes(cert)
    paths.key_file.write_bytes(key)
    return paths


@dataclass
class HecState:
    token: str
    events: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    # Status codes to answer with before accepting, each once, in order (503, 429, ...).
    refusals: list[int] = field(default_factory=list)
    retry_after: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def _decode_batch(body: bytes) -> list[dict[str, Any]]:
    """HEC bodies are JSON objects one after another (whitespace between them allowed)."""
    decoder = json.JSONDecoder()
    text, index, found = body.decode(), 0, []
    while index < len(text):
        while index < len(text) and text[index].isspace():
            index += 1
        if index == len(text):
            break
        item, index = decoder.raw_decode(text, index)
        found.append(item)
    return found


def _handler(state: HecState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any], hint: str | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if hint is not None:
                self.send_header("Retry-After", hint)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != "/services/collector/event":
                return self._answer(404, {"text": "not found", "code": 404})
            if self.headers.get("Authorization") != f"Splunk {state.token}":
                return self._answer(403, {"text": "Invalid token", "code": 4})
            with state.lock:
                state.requests += 1
                if state.refusals:
                    status = state.refusals.pop(0)
                    return self._answer(status, {"text": "busy", "code": 9}, state.retry_after)
                try:
                    batch = _decode_batch(body)
                except ValueError:
                    return self._answer(400, {"text": "Invalid data format", "code": 6})
                if any("event" not in item or "poison" in item["event"] for item in batch):
                    return self._answer(400, {"text": "Event field is required", "code": 12})
                state.events.extend(batch)
            self._answer(200, {"text": "Success", "code": 0})

    return Handler


class _Server(ThreadingHTTPServer):
    """Also ends kept-alive connections on close, as a receiver that went away would."""

    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.open_connections: set[socket.socket] = set()

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = super().get_request()
        self.open_connections.add(conn)
        return conn, address

    def shutdown_request(self, request: Any) -> None:
        self.open_connections.discard(request)
        super().shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        for conn in list(self.open_connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


class HecListener:
    """HTTPS on 127.0.0.1; stop() closes the port, start() reopens it on the same number."""

    def __init__(self, pki: TestPki, token: str) -> None:
        self.state = HecState(token=token)
        self._context = pki.server_context()
        self.port = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        server = _Server(("127.0.0.1", self.port), _handler(self.state))
        server.socket = self._context.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = self._thread = None

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def received(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return list(self.state.events)


class SyslogListener:
    """RFC 5425 receiver: TLS, octet-counted frames, closes each session at the sender's EOF."""

    def __init__(self, pki: TestPki) -> None:
        self._context = pki.server_context()
        self.port = 0
        self.messages: list[bytes] = []
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(16)
        self.port = sock.getsockname()[1]
        self._sock = sock
        thread = threading.Thread(target=self._accept, args=(sock,), daemon=True)
        thread.start()
        self._threads = [thread]

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return  # the listening socket was closed by stop()
            with self._lock:
                self._conns.add(conn)
            thread = threading.Thread(target=self._session, args=(conn,), daemon=True)
            thread.start()

    def _session(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(10)
            with self._context.wrap_socket(conn, server_side=True) as tls:
                buffer = b""
                while chunk := tls.recv(65536):
                    buffer += chunk
                    buffer = self._take_frames(buffer)
        except (OSError, ValueError):
            pass  # the sender or stop() ended the session
        finally:
            with self._lock:
                self._conns.discard(conn)

    def _take_frames(self, buffer: bytes) -> bytes:
        while b" " in buffer:
            length_text, rest = buffer.split(b" ", 1)
            length = int(length_text)
            if len(rest) < length:
                break
            with self._lock:
                self.messages.append(rest[:length])
            buffer = rest[length:]
        return buffer

    def stop(self) -> None:
        if self._sock is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would not, and
            # the kernel would keep the port listening until it returned.
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
            self._sock = None
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        for thread in self._threads:
            thread.join(5)

    def received(self) -> list[bytes]:
        with self._lock:
            return list(self.messages)
