"""Dashboard sessions: settings, tokens, cookies, the `next` target, and `require_role`.

For every dashboard request with a session the guard (collector/web/guard.py) sets
`request.state.actor` ("user:NAME"), `.username`, `.role` and `.csrf_token`; a page that
changes something calls `require_role(request, "analyst")` first.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from collector.web.auth import role_allows

_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
_COOKIE_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_MAX_NEXT = 2000


@dataclass(frozen=True)
class AccessSettings:
    """Session limits and cookie flags; `cookie_secure` when browsers reach the dashboard
    over HTTPS (directly or through a TLS proxy): cookies get `Secure` and `__Host-`."""

    idle: timedelta = timedelta(minutes=30)
    absolute: timedelta = timedelta(hours=12)
    cookie_secure: bool = False

    @property
    def session_cookie(self) -> str:
        return "__Host-shadowai_session" if self.cookie_secure else "shadowai_session"

    @property
    def login_cookie(self) -> str:
        """The login form's CSRF token (double submit), before there is a session."""
        return "__Host-shadowai_login" if self.cookie_secure else "shadowai_login"


@dataclass(frozen=True)
class Viewer:
    """Who is looking at a page: what templates show and what the guard checked."""

    username: str
    role: str
    csrf_token: str
    token_sha256: bytes

    @property
    def actor(self) -> str:
        return f"user:{self.username}"


# Set by the guard around each dashboard request, read by the page renderer, so that pages
# need not pass the request down to get the user and the CSRF token into their templates.
current_viewer: ContextVar[Viewer | None] = ContextVar("current_viewer", default=None)


def require_role(request: Request, role: str) -> None:
    """403 unless the session's role includes `role` (viewer < analyst < admin)."""
    have = getattr(request.state, "role", None)
    if not role_allows(have, role):
        raise HTTPException(status_code=403, detail=f"needs role {role}, you have {have}")


def needs(role: str) -> Callable[[Request], None]:
    """`require_role` as a dependency: `@router.post(..., dependencies=[Depends(needs(R))])`."""

    def check(request: Request) -> None:
        require_role(request, role)

    return check


def mint_token() -> tuple[str, bytes]:
    """A fresh (session token for the cookie, its sha256 for the store)."""
    token = secrets.token_urlsafe(32)
    return token, token_sha256(token)


def mint_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def token_sha256(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii")).digest()


def parse_token(text: str | None) -> bytes | None:
    """The sha256 of a well-formed session token, else None."""
    if text is None or len(text) != 43 or not _TOKEN.fullmatch(text):
        return None
    return token_sha256(text)


def read_cookie(header: str | None, name: str) -> str | None:
    """The value of cookie `name` in a Cookie header, else None (the first one if repeated)."""
    if not header or not _COOKIE_NAME.fullmatch(name):
        return None
    for part in header.split(";"):
        key, eq, value = part.strip().partition("=")
        if eq and key == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value
    return None


def safe_next(value: str | None) -> str:
    """`value` if it is a path on this site, else "/": never a way to send someone elsewhere."""
    if not value or len(value) > _MAX_NEXT or not value.isascii():
        return "/"
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value
