"""SIEM forwarding: queue append rate, and end-to-end drain rate to local TLS listeners
(Splunk-HEC-compatible HTTPS and RFC 5425 syslog), each with its reference in the same run.

Run: python -m bench.forward (about 20 s).
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from collector.forward import Forwarding, parse_config
from collector.forward.config import HecConfig
from collector.forward.queue import ForwardQueue
from collector.forward.records import hec_record
from collector.forward.transport import HecTransport
from collector.pki import make_ca, make_server_cert

EVENTS = 20_000
TOKEN = "bench-token"


def _event(n: int) -> dict[str, object]:
    return {
        "@timestamp": "2026-12-04T10:00:00Z",
        "event.dataset": "shadowai.model_file",
        "event.action": "snapshot",
        "host.name": f"laptop-{n % 500}",
        "agent.id": f"agent-{n % 500:04d}",
        "file.path": f"/home/dev/.cache/huggingface/hub/models--org--m{n}/model.safetensors",
        "file.size": 4_920_734_016,
        "file.hash.sha256": f"{n:064x}",
        "ai.model.format": "safetensors",
        "ai.model.name": f"model {n}",
        "ai.model.architecture": "llama",
        "ai.model.parameters": 8_030_261_248,
        "ai.model.quantization": "BF16",
    }


def _tls(directory: Path) -> tuple[Path, ssl.SSLContext]:
    now = dt.datetime.now(dt.UTC)
    ca, ca_key = make_ca(now)
    cert, key = make_server_cert(ca, ca_key, ["localhost"], now)
    for name, data in (("ca.pem", ca), ("cert.pem", cert), ("key.pem", key)):
        (directory / name).write_bytes(data)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return directory / "ca.pem", context


class _Count:
    def __init__(self) -> None:
        self.value, self.lock = 0, threading.Lock()

    def add(self, n: int) -> None:
        with self.lock:
            self.value += n


def _hec_server(context: ssl.SSLContext, count: _Count) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            count.add(body.count(b"\n") + 1)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _syslog_server(context: ssl.SSLContext, count: _Count) -> socket.socket:
    sock = socket.create_server(("127.0.0.1", 0))

    def session(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            buffer = b""
            while chunk := tls.recv(1 << 16):
                buffer += chunk
                while b" " in buffer:
                    size, rest = buffer.split(b" ", 1)
                    if len(rest) < int(size):
                        break
                    buffer = rest[int(size) :]
                    count.add(1)

    def accept() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=session, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return sock


def _append_rates(directory: Path) -> Iterator[str]:
    batched = ForwardQueue.open(directory / "batched.sqlite3", max_bytes=2**30)
    start = time.perf_counter()
    for base in range(0, EVENTS, 100):
        batched.append([("event", _event(n)) for n in range(base, base + 100)], now_s=0)
    batch_rate = EVENTS / (time.perf_counter() - start)
    single = ForwardQueue.open(directory / "single.sqlite3", max_bytes=2**30)
    count = 1000
    start = time.perf_counter()
    for n in range(count):
        single.append([("event", _event(n))], now_s=0)
    single_rate = count / (time.perf_counter() - start)
    batched.close()
    single.close()
    yield f"forward queue append, 100 per transaction: {batch_rate:,.0f} events/s"
    yield f"forward queue append, 1 per transaction (reference): {single_rate:,.0f} events/s"
    yield f"forward queue append ratio batched/single: {batch_rate / single_rate:.1f}x"


def _drain(config: dict[str, object], directory: Path, count: _Count) -> float:
    forwarding = Forwarding.open(parse_config(config), data_dir=directory)
    for base in range(0, EVENTS, 1000):
        forwarding.submit([_event(n) for n in range(base, base + 1000)])
    start = time.perf_counter()
    forwarding.start()
    while forwarding.metrics()[0].queued:
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    forwarding.close()
    if count.value < EVENTS:
        raise RuntimeError(f"only {count.value} of {EVENTS} events arrived")
    return EVENTS / elapsed


def _hec_rates(directory: Path, ca: Path, context: ssl.SSLContext) -> Iterator[str]:
    count = _Count()
    server = _hec_server(context, count)
    url = f"https://localhost:{server.server_address[1]}"
    rate = _drain({"hec": {"url": url, "token": TOKEN, "ca_file": str(ca)}}, directory, count)
    transport = HecTransport(HecConfig(url=url, token=TOKEN, ca_file=ca))
    records = [hec_record(_event(n), kind="event", now_s=0, source="s") for n in range(500)]
    start = time.perf_counter()
    for _ in range(EVENTS // 500):
        transport.send(records)
    reference = EVENTS / (time.perf_counter() - start)
    transport.close()
    server.shutdown()
    server.server_close()
    yield f"forward to HEC over TLS, queue to ack: {rate:,.0f} events/s"
    yield f"HEC POSTs of preformatted 500-event batches (reference): {reference:,.0f} events/s"
    yield f"forward to HEC ratio to the bare transport: {rate / reference:.2f}"


def _syslog_rate(directory: Path, ca: Path, context: ssl.SSLContext) -> Iterator[str]:
    count = _Count()
    sock = _syslog_server(context, count)
    address = f"localhost:{sock.getsockname()[1]}"
    rate = _drain({"syslog": {"address": address, "ca_file": str(ca)}}, directory, count)
    sock.close()
    yield f"forward to syslog over TLS (one confirmed connection per 500): {rate:,.0f} events/s"


def run() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        ca, context = _tls(directory)
        yield from _append_rates(directory)
        (directory / "hec").mkdir()
        yield from _hec_rates(directory / "hec", ca, context)
        (directory / "syslog").mkdir()
        yield from _syslog_rate(directory / "syslog", ca, context)


if __name__ == "__main__":
    for line in run():
        print(line, flush=True)
    sys.exit(0)
