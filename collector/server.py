"""Start and stop the collector's listeners: gRPC for agents, HTTP for the dashboard and API."""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass

import grpc
import uvicorn

from collector.errors import CollectorError
from collector.governance import RuleSet
from collector.governance.live import LiveRules
from collector.pki import ServerPki
from collector.ratelimit import Buckets
from collector.service import CollectorService, Forward
from collector.store import Store
from collector.web import create_app
from wire.v1 import collector_pb2_grpc

log = logging.getLogger(__name__)
# An agent sends a health event every pass (5 min by default); a day without one is news.
SILENT_AFTER = 24 * 3600.0


def split_address(text: str) -> tuple[str, int]:
    """HOST:PORT, with [v6]:PORT; port 0 picks a free port."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise CollectorError(f"{text!r}: expected HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class Running:
    grpc_address: str
    http_address: str
    service: CollectorService
    _grpc: grpc.Server
    _http: uvicorn.Server
    _http_thread: threading.Thread
    _watch_stop: threading.Event
    _watch_thread: threading.Thread
    _live: LiveRules | None = None

    def stop(self, grace: float = 2.0) -> None:
        self._watch_stop.set()
        if self._live is not None:
            self._live.stop()
        self._http.should_exit = True
        self._grpc.stop(grace).wait(grace + 1)
        self._http_thread.join(grace + 3)
        self._watch_thread.join(grace + 3)


def start(
    *,
    store: Store,
    rules: RuleSet | LiveRules,
    grpc_address: str,
    http_address: str,
    pki: ServerPki | None,
    silent_after: float = SILENT_AFTER,
    mtls_address: str | None = None,
    enroll_per_minute: float = 12.0,
    forward: Forward | None = None,
) -> Running:
    """Start both listeners; `pki=None` means plaintext gRPC (the caller checked it is wanted).

    With `mtls_address`, a second gRPC port requires a client certificate from the
    collector's CA, and Publish is refused anywhere else: the first port then only serves
    enrollment, which issues those certificates (gRPC cannot ask for a client certificate
    optionally, so one port cannot serve both). A watcher thread raises a silence event
    for agents quiet longer than `silent_after` seconds. LiveRules are watched for changes
    until the collector stops.
    """
    live = rules if isinstance(rules, LiveRules) else None
    current = live.current if live is not None else lambda: rules
    mtls = pki is not None and bool(pki.ca_key_pem) and mtls_address is not None
    if enroll_per_minute <= 0:
        raise CollectorError(f"enrollment rate {enroll_per_minute}/min: must be > 0")
    service = CollectorService(
        store=store,
        rules=current,  # type: ignore[arg-type]
        pki=pki,
        require_client_cert=mtls,
        enroll_limit=Buckets(per_second=enroll_per_minute / 60, burst=10),
        forward=forward,
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="grpc"),
        options=[("grpc.max_receive_message_length", 16 * 2**20)],
    )
    collector_pb2_grpc.add_CollectorServicer_to_server(service, server)
    host, port = split_address(grpc_address)
    target = _hostport(host, port)
    if pki is None:
        bound = server.add_insecure_port(target)
    else:
        creds = grpc.ssl_server_credentials([(pki.key_pem, pki.cert_chain_pem)])
        bound = server.add_secure_port(target, creds)
    if bound == 0:
        raise CollectorError(f"grpc: cannot listen on {target}")
    if mtls and pki is not None and mtls_address is not None:
        service.mtls_port = _add_mtls_port(server, pki, mtls_address)
    server.start()
    fingerprint = None if pki is None else pki.ca_fingerprint
    http, thread, http_port = _start_http(store, current, live, http_address, fingerprint)  # type: ignore[arg-type]
    http_host = split_address(http_address)[0]
    if live is not None:
        live.set_emit(service.record_collector_event)
        live.check()  # report exceptions already expired at start
        live.start()
    watch_stop = threading.Event()
    watcher = threading.Thread(
        target=_watch_silence, args=(service, watch_stop, silent_after), name="silence"
    )
    watcher.start()
    return Running(
        _hostport(host, bound),
        _hostport(http_host, http_port),
        service,
        server,
        http,
        thread,
        watch_stop,
        watcher,
        live,
    )


def _add_mtls_port(server: grpc.Server, pki: ServerPki, address: str) -> int:
    host, port = split_address(address)
    creds = grpc.ssl_server_credentials(
        [(pki.key_pem, pki.cert_chain_pem)], root_certificates=pki.ca_pem, require_client_auth=True
    )
    bound: int = server.add_secure_port(_hostport(host, port), creds)
    if bound == 0:
        raise CollectorError(f"grpc mtls: cannot listen on {address}")
    return bound


def _watch_silence(service: CollectorService, stop: threading.Event, silent_after: float) -> None:
    while not stop.wait(min(60.0, max(0.5, silent_after / 4))):
        try:
            service.report_silence(silent_after=silent_after)
        except Exception:
            # The store may be briefly away; the next round reports what this one missed.
            log.exception("silence check failed")


def _start_http(
    store: Store,
    current: Callable[[], RuleSet],
    live: LiveRules | None,
    address: str,
    ca_fingerprint: str | None,
) -> tuple[uvicorn.Server, threading.Thread, int]:
    host, port = split_address(address)
    app = create_app(
        store,
        rules_summary=lambda: rules_summary(current()),
        rules_status=live.status if live is not None else None,
        ca_fingerprint=ca_fingerprint,
    )
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    http = uvicorn.Server(config)
    thread = threading.Thread(target=http.run, name="http", daemon=True)
    thread.start()
    while not http.started:
        if not thread.is_alive():
            raise CollectorError(f"http: cannot listen on {address}")
        threading.Event().wait(0.02)
    sockets = [s for server in http.servers for s in server.sockets]
    return http, thread, int(sockets[0].getsockname()[1])


def rules_summary(rules: RuleSet) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    rows += [
        {
            "id": rule.id,
            "title": rule.title,
            "level": rule.level,
            "dataset": rule.dataset,
            "tags": list(rule.tags),
            "action": rule.action,
            "source": rule.source,
        }
        for rule in rules.rules
    ]
    rows += [
        {
            "id": c.id,
            "title": c.title,
            "level": c.level,
            "dataset": f"correlation: {c.kind}",
            "tags": list(c.tags),
            "action": c.action,
            "source": c.source,
        }
        for c in rules.correlations
    ]
    return rows
