"""The I/O shell of forwarding: send formatted records to a Splunk-compatible HTTP event
collector, or to a syslog receiver over TLS (RFC 5425) with octet counting (RFC 6587).
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from collector.forward.config import HecConfig, SyslogConfig
from collector.forward.policy import Verdict, hec_verdict, retry_after
from collector.forward.records import frame

_MAX_ANSWER = 64 * 1024  # a HEC answer is a short JSON object; read no more than this


@dataclass(frozen=True)
class Delivery:
    verdict: Verdict
    retry_after: float | None = None
    detail: str = ""


def client_context(
    ca_file: str | None, cert: str | None = None, key: str | None = None
) -> ssl.SSLContext:
    """Verifying TLS client context: the given CA (or the system's), TLS 1.2 at least."""
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


class HecTransport:
    """POSTs batches to /services/collector/event on one kept-alive connection."""

    def __init__(self, config: HecConfig, *, context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(config.endpoint)
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname or "", parts.port
        self._path = parts.path
        self._timeout = config.timeout_s
        self._auth = f"Splunk {config.token}"
        ca = str(config.ca_file) if config.ca_file else None
        self._context = context or (client_context(ca) if self._https else None)
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=self._context
                )
            else:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout
                )
        return self._conn

    def send(self, records: Sequence[bytes]) -> Delivery:
        """One request; OSError (and http.client's errors) when the collector is away."""
        body = b"\n".join(records)  # HEC takes event objects one after another
        headers = {"Authorization": self._auth, "Content-Type": "application/json"}
        conn = self._connection()
        try:
            conn.request("POST", self._path, body=body, headers=headers)
            answer = conn.getresponse()
            text = answer.read(_MAX_ANSWER)
            hint = retry_after(answer.getheader("Retry-After"))
            if answer.will_close or not answer.isclosed():
                self.close()  # closed by the peer, or an answer too long to read to its end
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        detail = f"HTTP {answer.status}: {text[:200].decode('utf-8', 'replace')}"
        return Delivery(hec_verdict(answer.status), hint, detail)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class SyslogTransport:
    """One TLS connection per batch, confirmed by the receiver's orderly close.

    Syslog has no application-level acknowledgement: bytes a dying receiver never read are
    lost silently if the sender keeps its connection. So each batch ends with our TLS
    close_notify and a wait for the receiver's end of the stream; a receiver that vanished
    with our bytes unread resets the connection instead, and the batch stays queued.
    """

    def __init__(self, config: SyslogConfig, *, context: ssl.SSLContext | None = None) -> None:
        self._config = config
        ca = str(config.ca_file) if config.ca_file else None
        cert = str(config.client_cert) if config.client_cert else None
        key = str(config.client_key) if config.client_key else None
        self._context = context or client_context(ca, cert, key)

    def send(self, messages: Sequence[bytes]) -> Delivery:
        cfg = self._config
        data = b"".join(frame(message) for message in messages)
        raw = socket.create_connection((cfg.host, cfg.port), timeout=cfg.timeout_s)
        with self._context.wrap_socket(raw, server_hostname=cfg.host) as tls:
            tls.sendall(data)
            _confirm_close(tls)
        return Delivery(Verdict.ACCEPTED)

    def close(self) -> None:
        """Nothing is held between batches."""


def _confirm_close(tls: ssl.SSLSocket) -> None:
    """Send close_notify, then read until the receiver ends the stream; raise if it resets."""
    try:
        plain = tls.unwrap()
    except ssl.SSLEOFError:
        return  # the receiver closed its TCP side after reading to our close_notify
    except ssl.SSLZeroReturnError:
        return
    plain.settimeout(tls.gettimeout())
    while plain.recv(4096):
        pass  # a receiver that talks back (it should not) is read to its end
