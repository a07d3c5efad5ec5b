"""The delivery pieces of `shadowai-agent`: the mTLS client key, status, exit statuses.

Kept out of agent/cli.py so that the command line only wires them in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent import resync, spoolstate
from agent.identity import Enrollment, write_private
from agent.shipper import ClientTls, ShipStats
from agent.spool import Spool
from agent.spoolfile import open_spool

CLIENT_KEY = "client.key"
CLIENT_CERT = "client.pem"
SPOOL_FILE = "spool.db"
EXIT_REVOKED = 3
EXIT_GAVE_UP = 75  # EX_TEMPFAIL: try again later


def client_csr(data_dir: Path, agent_id: str) -> bytes:
    """A new TLS client key (kept owner-only) and its certificate request.

    The TLS key is separate from the Ed25519 signing key: the channel and the events have
    different lifetimes, and the collector names the certificate after the agent anyway.
    """
    # Imported here: only enrollment needs X.509, and the worker imports this module.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    write_private(
        data_dir / CLIENT_KEY,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, agent_id)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def save_client_cert(data_dir: Path, cert_pem: bytes) -> None:
    path = data_dir / CLIENT_CERT
    if cert_pem:
        write_private(path, cert_pem)
    elif path.exists():
        path.unlink()  # enrolled with a collector that issues none: do not present a stale one


def mtls_target(host: str, port: int) -> str | None:
    if not port:
        return None
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def client_tls(data_dir: Path, enrollment: Enrollment) -> ClientTls | None:
    cert, key = data_dir / CLIENT_CERT, data_dir / CLIENT_KEY
    if enrollment.ca_pem is None or not cert.exists() or not key.exists():
        return None
    return ClientTls(cert.read_bytes(), key.read_bytes())


def adopt_position(
    data_dir: Path, *, last_seq: int, last_digest: bytes, agent_id: str, key: Ed25519PrivateKey
) -> None:
    """Start the spool's chain where the collector's copy of it stands (re-enrolling a key
    that already sent), so that the first envelopes after enrollment are not forks."""
    spool = open_spool(data_dir / SPOOL_FILE, max_bytes=2**40)
    try:
        if spoolstate.flag(spool, "needs_resync"):
            spoolstate.rebase(
                spool, last_seq=last_seq, last_digest=last_digest, agent_id=agent_id, key=key
            )
        else:
            spoolstate.catch_up(spool, last_seq=last_seq, last_digest=last_digest)
    finally:
        spool.close()


def delivery_status(spool: Spool) -> dict[str, Any]:
    return resync.status_fields(spool)


def ship_exit_status(stats: ShipStats, err: TextIO) -> int:
    if stats.revoked:
        err.write(f"error: this agent was revoked by the collector ({stats.last_error})\n")
        return EXIT_REVOKED
    if stats.gave_up:
        err.write(
            "error: gave up waiting for the collector"
            f" ({stats.last_error or 'no answer'}); the events stay spooled\n"
        )
        return EXIT_GAVE_UP
    return 1
