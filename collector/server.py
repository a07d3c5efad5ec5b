"""Start and stop the collector's listeners: gRPC for agents, HTTP for the dashboard and API."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
import uvicorn
from fastapi import FastAPI

from collector.errors import CollectorError
from collector.forward import Forwarding
from collector.governance import RuleSet
from collector.governance.live import LiveRules
from collector.metrics import NO_METRICS, Metrics
from collector.pki import ServerPki
from collector.ratelimit import Buckets
from collector.retention import Retention, cutoffs, expire
from collector.service import CollectorService, Forward
from collector.store import Store
from collector.telemetry import PrometheusMetrics
from collector.web import create_app, observe
from collector.web.hosts import HostAllowList, allowed_hosts, machine_names
from collector.web.session import AccessSettings
from wire.v1 import collector_pb2_grpc

log = logging.getLogger(__name__)
# An agent sends a health event every pass (5 min by default); a day without one is news.
SILENT_AFTER = 24 * 3600.0
RETENTION_EVERY = 3600.0
GRPC_THREADS = 8
MAX_CONCURRENT_RPCS = 64


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
    metrics: PrometheusMetrics
    _grpc: grpc.Server
    _http: list[tuple[uvicorn.Server, threading.Thread]]
    _watch_stop: threading.Event
    _watchers: list[threading.Thread]
    _live: LiveRules | None = None
    metrics_address: str | None = None  # the scrape-only listener, when there is one

    def stop(self, grace: float = 2.0) -> None:
        self._watch_stop.set()
        if self._live is not None:
            self._live.stop()
        for http, _ in self._http:
            http.should_exit = True
        self._grpc.stop(grace).wait(grace + 1)
        for _, thread in self._http:
            thread.join(grace + 3)
        for watcher in self._watchers:
            watcher.join(grace + 3)


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
    access: AccessSettings | None = None,
    allowed_hosts: Sequence[str] = (),
    metrics_address: str | None = None,
    retention: Retention | None = None,
) -> Running:
    """Start both listeners; `pki=None` means plaintext gRPC (the caller checked it is wanted).

    With `mtls_address`, a second gRPC port requires a client certificate from the
    collector's CA, and Publish is refused anywhere else: the first port then only serves
    enrollment, which issues those certificates (gRPC cannot ask for a client certificate
    optionally, so one port cannot serve both). A watcher thread raises a silence event
    for agents quiet longer than `silent_after` seconds. LiveRules are watched for changes
    until the collector stops. The dashboard answers to the `--http` host, loopback names
    and `allowed_hosts` (plus this machine's names when bound to every interface). With
    `metrics_address`, a third listener serves /metrics alone, without a token. With
    `retention`, a watcher deletes expired envelopes and events hourly (collector.retention).
    """
    live, current = _rule_source(rules)
    metrics = _metrics(store, forward)
    service, server, bound = _start_grpc(
        store=store,
        rules=current,
        grpc_address=grpc_address,
        pki=pki,
        mtls_address=mtls_address,
        enroll_per_minute=enroll_per_minute,
        forward=forward,
        metrics=metrics,
    )
    http_sock = _bind(*split_address(http_address))  # first: the Host allow-list needs the port
    app = create_app(
        store,
        rules_summary=lambda: rules_summary(current()),
        rules_status=live.status if live is not None else None,
        access=access or AccessSettings(),
        hosts=_served(http_sock, allowed_hosts),
        metrics=metrics.render,
        ca_fingerprint=None if pki is None else pki.ca_fingerprint,
    )
    listeners = [_start_http(app, http_sock)]
    if metrics_address is not None:
        scrape = observe.scrape_app(metrics.render)
        listeners.append(_start_http(scrape, _bind(*split_address(metrics_address))))
    if live is not None:
        live.set_emit(service.record_collector_event)
        live.check()  # report exceptions already expired at start
        live.start()
    watch_stop = threading.Event()
    watchers = [
        threading.Thread(
            target=_watch_silence, args=(service, watch_stop, silent_after), name="silence"
        )
    ]
    if retention is not None:
        watchers.append(
            threading.Thread(
                target=_watch_retention,
                args=(store, retention, watch_stop, metrics),
                name="retention",
            )
        )
    for watcher in watchers:
        watcher.start()
    return Running(
        grpc_address=bound,
        http_address=listeners[0][2],
        service=service,
        metrics=metrics,
        _grpc=server,
        _http=[(http, thread) for http, thread, _ in listeners],
        _watch_stop=watch_stop,
        _watchers=watchers,
        _live=live,
        metrics_address=listeners[1][2] if metrics_address is not None else None,
    )


@dataclass
class Ingest:
    """The gRPC listeners alone, as a worker process of `serve --workers N` runs them."""

    grpc_address: str
    service: CollectorService
    _grpc: grpc.Server
    _live: LiveRules | None = None

    def stop(self, grace: float = 2.0) -> None:
        if self._live is not None:
            self._live.stop()
        self._grpc.stop(grace).wait(grace + 1)


def start_ingest(
    *,
    store: Store,
    rules: RuleSet | LiveRules,
    grpc_address: str,
    pki: ServerPki | None,
    mtls_address: str | None = None,
    enroll_per_minute: float = 12.0,
    forward: Forward | None = None,
) -> Ingest:
    """Serve agents only: a worker beside a full collector (`start`) on the same ports.

    No dashboard, metrics, silence or retention watchers, and no collector events of its
    own (the full collector reports rule reloads and expiries once for all); LiveRules are
    still reloaded here, so that every process runs the same rules. Give real ports, not 0:
    the processes share them through SO_REUSEPORT.
    """
    live, current = _rule_source(rules)
    service, server, bound = _start_grpc(
        store=store,
        rules=current,
        grpc_address=grpc_address,
        pki=pki,
        mtls_address=mtls_address,
        enroll_per_minute=enroll_per_minute,
        forward=forward,
        metrics=NO_METRICS,
    )
    if live is not None:
        live.start()
    return Ingest(grpc_address=bound, service=service, _grpc=server, _live=live)


def _rule_source(rules: RuleSet | LiveRules) -> tuple[LiveRules | None, Callable[[], RuleSet]]:
    if isinstance(rules, LiveRules):
        return rules, rules.current
    return None, lambda: rules


def _start_grpc(
    *,
    store: Store,
    rules: Callable[[], RuleSet],
    grpc_address: str,
    pki: ServerPki | None,
    mtls_address: str | None,
    enroll_per_minute: float,
    forward: Forward | None,
    metrics: Metrics,
) -> tuple[CollectorService, grpc.Server, str]:
    """The started gRPC server, its service and the HOST:PORT it listens on."""
    mtls = pki is not None and bool(pki.ca_key_pem) and mtls_address is not None
    if enroll_per_minute <= 0:
        raise CollectorError(f"enrollment rate {enroll_per_minute}/min: must be > 0")
    service = CollectorService(
        store=store,
        rules=rules,
        pki=pki,
        require_client_cert=mtls,
        enroll_limit=Buckets(per_second=enroll_per_minute / 60, burst=10),
        forward=forward,
        metrics=metrics,
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=GRPC_THREADS, thread_name_prefix="grpc"),
        options=[("grpc.max_receive_message_length", 16 * 2**20)],
        # Beyond this many calls accepted and not yet answered, a call is refused at once
        # (RESOURCE_EXHAUSTED, which agents retry with backoff) instead of queueing for
        # longer than its deadline; memory stays bounded too.
        maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
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
    return service, server, _hostport(host, bound)


def _metrics(store: Store, forward: Forward | None) -> PrometheusMetrics:
    metrics = PrometheusMetrics()
    metrics.watch_store(store, lambda: datetime.now(UTC))
    if isinstance(forward, Forwarding):
        metrics.watch_forwarding(forward.metrics)
    return metrics


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


def _watch_retention(
    store: Store,
    policy: Retention,
    stop: threading.Event,
    metrics: PrometheusMetrics,
    every: float = RETENTION_EVERY,
) -> None:
    """Expire old rows now, then every `every` seconds; each wait and batch ends on `stop`."""
    while not stop.is_set():
        try:
            deleted = expire(store, cutoffs(policy, datetime.now(UTC)), stop=stop)
        except Exception:
            # The store may be briefly away; the next round deletes what this one missed.
            log.exception("retention failed")
        else:
            for table, count in deleted.items():
                metrics.retention_deleted(table, count)
            if any(deleted.values()):
                log.info("retention deleted %s", deleted)
        stop.wait(every)


def _served(sock: socket.socket, allowed: Sequence[str]) -> HostAllowList:
    """The Host names the dashboard answers to, now that its port is known."""
    host, port = sock.getsockname()[:2]
    return allowed_hosts(str(host), int(port), allowed, machine_names())


def _start_http(app: FastAPI, sock: socket.socket) -> tuple[uvicorn.Server, threading.Thread, str]:
    """Serve `app` on a thread from a bound socket; the server, its thread and HOST:PORT."""
    host, port = sock.getsockname()[:2]
    address = _hostport(str(host), int(port))
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    http = uvicorn.Server(config)
    thread = threading.Thread(target=http.run, kwargs={"sockets": [sock]}, name="http", daemon=True)
    thread.start()
    while not http.started:
        if not thread.is_alive():
            sock.close()
            raise CollectorError(f"http: cannot serve on {address}")
        threading.Event().wait(0.02)
    return http, thread, address


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CollectorError(f"http: cannot listen on {_hostport(host, port)}: {exc}") from None
    return sock


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
