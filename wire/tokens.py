"""Enrollment tokens: single-use secrets that also pin the collector's CA (as kubeadm's do).

Format: ``sae_<token id: 16 hex>_<CA SHA-256: 64 hex>_<secret>``; the prefix lets secret
scanners find a leaked token. The collector keeps only the secret's SHA-256.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

_TOKEN = re.compile(
    r"sae_(?P<id>[0-9a-f]{16})_(?P<ca>[0-9a-f]{64})_(?P<secret>[A-Za-z0-9_-]{32,64})"
)


class TokenError(ValueError):
    """Text that is not an enrollment token."""


@dataclass(frozen=True)
class EnrollmentToken:
    token_id: str
    ca_fingerprint: str
    secret: str

    def __str__(self) -> str:
        return f"sae_{self.token_id}_{self.ca_fingerprint}_{self.secret}"

    @property
    def secret_sha256(self) -> bytes:
        return secret_digest(self.secret.encode())


def secret_digest(secret: bytes) -> bytes:
    return hashlib.sha256(secret).digest()


def mint(ca_fingerprint: str) -> EnrollmentToken:
    return EnrollmentToken(secrets.token_hex(8), ca_fingerprint, secrets.token_urlsafe(32))


def parse(text: str) -> EnrollmentToken:
    match = _TOKEN.fullmatch(text.strip())
    if match is None:
        raise TokenError(
            "not an enrollment token: expected sae_<16 hex>_<64 hex>_<secret> "
            "as printed by `shadowai-collector tokens create`"
        )
    return EnrollmentToken(match["id"], match["ca"], match["secret"])
