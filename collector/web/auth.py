"""Pure: API tokens (`sat_<token_id>_<secret>`) and the roles they grant.

The store keeps only the sha256 of the secret; the token_id finds the row, so checking
a token costs one indexed lookup and one constant-time comparison.
"""

from __future__ import annotations

import hashlib
import re
import secrets

ROLES = ("viewer", "analyst", "admin")  # each includes the ones before it
TOKEN_PREFIX = "sat_"
_TOKEN = re.compile(r"sat_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_TOKEN_LENGTH = len(TOKEN_PREFIX) + 16 + 1 + 43


def secret_sha256(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def mint_api_token() -> tuple[str, str, bytes]:
    """A fresh (token, token_id, secret_sha256); show the token once, store the rest."""
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return f"{TOKEN_PREFIX}{token_id}_{secret}", token_id, secret_sha256(secret)


def parse_api_token(text: str) -> tuple[str, bytes] | None:
    """(token_id, secret_sha256) of a well-formed token, else None."""
    if len(text) != _TOKEN_LENGTH:
        return None
    match = _TOKEN.fullmatch(text)
    if match is None:
        return None
    return match.group(1), secret_sha256(match.group(2))


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of an `Authorization: Bearer ...` header, else None."""
    if authorization is None:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def role_allows(role: str | None, required: str) -> bool:
    """Whether `role` may do what needs `required`; unknown roles may do nothing."""
    if role not in ROLES or required not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(required)
