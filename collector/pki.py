"""The collector's own CA and TLS server certificate, created on first start in the data dir."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CA_DAYS = 3650
SERVER_DAYS = 825
CLIENT_DAYS = 825


@dataclass(frozen=True)
class ServerPki:
    ca_pem: bytes
    cert_chain_pem: bytes  # server certificate followed by the CA, so agents can pin the CA
    key_pem: bytes
    ca_key_pem: bytes = b""  # signs agents' client certificates; empty: mTLS not offered

    @property
    def ca_fingerprint(self) -> str:
        return ca_fingerprint(self.ca_pem)


def ca_fingerprint(ca_pem: bytes) -> str:
    """SHA-256 of the CA certificate's DER bytes, hex: what enrollment tokens carry."""
    der = x509.load_pem_x509_certificate(ca_pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_ca(now: dt.datetime) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shadowai collector CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def make_server_cert(
    ca_pem: bytes, ca_key_pem: bytes, names: list[str], now: dt.datetime
) -> tuple[bytes, bytes]:
    ca = x509.load_pem_x509_certificate(ca_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


class CsrError(ValueError):
    """A certificate request we will not sign."""


def issue_client_cert(
    ca_pem: bytes, ca_key_pem: bytes, csr_pem: bytes, agent_id: str, now: dt.datetime
) -> bytes:
    """A client certificate for the CSR's key, named after the agent (never the CSR's say-so).

    The CSR only contributes its public key, after its self-signature checks out; the
    subject is the agent id the enrollment bound, so the TLS identity and the signing
    identity cannot disagree.
    """
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise CsrError(f"csr_pem: not a PEM certificate request: {exc}") from None
    if not csr.is_signature_valid:
        raise CsrError("csr_pem: the request's signature does not verify")
    public_key = csr.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise CsrError("csr_pem: expected an EC key")
    ca = x509.load_pem_x509_certificate(ca_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, agent_id)]))
        .issuer_name(ca.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CLIENT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def server_names(extra: list[str]) -> list[str]:
    return ["localhost", "127.0.0.1", "::1", socket.gethostname(), *extra]


def ensure_pki(directory: Path, *, names: list[str], now: dt.datetime) -> ServerPki:
    """Load the CA and server certificate, creating them on first start.

    The server certificate is re-issued when a requested name is missing from it.
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_path, ca_key_path = directory / "ca.pem", directory / "ca.key"
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    if not ca_path.exists():
        ca_pem, ca_key_pem = make_ca(now)
        _write_private(ca_key_path, ca_key_pem)
        ca_path.write_bytes(ca_pem)
    ca_pem = ca_path.read_bytes()
    if not cert_path.exists() or not _covers(cert_path.read_bytes(), names):
        cert_pem, key_pem = make_server_cert(ca_pem, ca_key_path.read_bytes(), names, now)
        _write_private(key_path, key_pem)
        cert_path.write_bytes(cert_pem)
    return ServerPki(
        ca_pem=ca_pem,
        cert_chain_pem=cert_path.read_bytes() + ca_pem,
        key_pem=key_path.read_bytes(),
        ca_key_pem=ca_key_path.read_bytes(),
    )


def _covers(cert_pem: bytes, names: list[str]) -> bool:
    cert = x509.load_pem_x509_certificate(cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    have = {str(n) for n in san.get_values_for_type(x509.DNSName)}
    have |= {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    wanted = set()
    for name in names:
        try:
            wanted.add(str(ipaddress.ip_address(name)))
        except ValueError:
            wanted.add(name)
    return wanted <= have
