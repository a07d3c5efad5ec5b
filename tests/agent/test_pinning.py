"""The CA is trusted only when it hashes to the token's fingerprint."""

from __future__ import annotations

import hashlib
import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from agent.errors import EnrollmentError
from agent.pinning import fetch_pinned_ca, pick_ca
from collector.pki import ensure_pki


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, bytes]]:
    """A real TLS listener presenting the collector's certificate chain."""
    pki = ensure_pki(tmp_path, names=["127.0.0.1"], now=datetime.now(UTC))
    (tmp_path / "chain.pem").write_bytes(pki.cert_chain_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "chain.pem", tmp_path / "server.key")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (OSError, ssl.SSLError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port, pki.ca_pem
    listener.close()


def _fingerprint(ca_pem: bytes) -> str:
    der = x509.load_pem_x509_certificate(ca_pem).public_bytes(Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def test_the_ca_with_the_tokens_fingerprint_is_fetched(tls_server: tuple[int, bytes]) -> None:
    port, ca_pem = tls_server
    fetched = fetch_pinned_ca("127.0.0.1", port, _fingerprint(ca_pem))
    assert _fingerprint(fetched) == _fingerprint(ca_pem)


def test_a_chain_without_the_fingerprint_is_refused(tls_server: tuple[int, bytes]) -> None:
    port, _ = tls_server
    with pytest.raises(EnrollmentError, match="fingerprint"):
        fetch_pinned_ca("127.0.0.1", port, "0" * 64)


def test_an_unreachable_collector_is_a_clear_error() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(EnrollmentError, match="cannot reach"):
        fetch_pinned_ca("127.0.0.1", port, "0" * 64, timeout=2)


def test_pick_ca_ignores_certificates_that_do_not_match(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, names=["127.0.0.1"], now=datetime.now(UTC))
    ca_der = x509.load_pem_x509_certificate(pki.ca_pem).public_bytes(Encoding.DER)
    assert pick_ca([b"not a cert", ca_der], hashlib.sha256(ca_der).hexdigest()) == pki.ca_pem
