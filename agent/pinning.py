"""Fetch the collector's CA over TLS and accept it only if it matches the token's fingerprint.

The enrollment token carries the CA's SHA-256, so the first connection needs no CA file
and still cannot be intercepted: the certificate chain is read without trust, and trusted
only after its CA hashes to the value the security team handed out.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import ssl
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from agent.errors import EnrollmentError


def _unverified_chain(sock: ssl.SSLSocket) -> list[bytes]:
    # Public API from Python 3.13; the same method sits on the C object in 3.10-3.12.
    getter: Any = getattr(sock, "get_unverified_chain", None)
    if getter is None:
        getter = sock._sslobj.get_unverified_chain  # type: ignore[attr-defined]
    chain = getter() or []
    return [c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER) for c in chain]  # type: ignore[attr-defined]


def pick_ca(chain_der: list[bytes], fingerprint: str) -> bytes:
    """The PEM of the certificate in the chain whose SHA-256 is `fingerprint` (pure)."""
    for der in chain_der:
        if hmac.compare_digest(hashlib.sha256(der).hexdigest(), fingerprint.lower()):
            cert = x509.load_der_x509_certificate(der)
            return cert.public_bytes(Encoding.PEM)
    raise EnrollmentError(
        "the collector's certificate chain has no CA with the token's fingerprint: "
        "wrong collector address, or someone in between"
    )


def fetch_pinned_ca(host: str, port: int, fingerprint: str, *, timeout: float = 10.0) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # trust comes from the fingerprint check below
    context.set_alpn_protocols(["h2"])
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            chain = _unverified_chain(tls)
    except OSError as exc:
        raise EnrollmentError(f"cannot reach the collector at {host}:{port}: {exc}") from None
    return pick_ca(chain, fingerprint)
