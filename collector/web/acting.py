"""Who acts, as the audit log names them: a person on a page, or an API token.

The one place that reads the login's identity off a page request: the guard
(collector/web/guard.py) sets `request.state.actor` ("user:alice") and `request.state.role`
for a signed-in session; a request without them acts as no one. Through the API, the actor
is the bearer token's id (its secret never leaves the header); `require` in
collector.web.app checks the token's role.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Header, HTTPException, Request

from collector.web.auth import bearer_token, parse_api_token, role_allows


@dataclass(frozen=True)
class Acting:
    actor: str  # as the audit log names them
    role: str


def acting(request: Request) -> Acting:
    """The signed-in person; 401 when the guard let the request through without a session
    (it never should: this fails closed)."""
    actor = getattr(request.state, "actor", None)
    role = getattr(request.state, "role", None)
    if actor is None or role is None:
        raise HTTPException(status_code=401, detail="sign in first")
    return Acting(actor=str(actor), role=str(role))


def require(request: Request, role: str) -> Acting:
    """The person acting, if their role includes `role`; else 403. A change must come from
    one of our own pages: a form another site posts through the browser is refused."""
    who = acting(request)
    if not role_allows(who.role, role):
        raise HTTPException(status_code=403, detail=f"needs role {role}, you have {who.role}")
    if request.method not in ("GET", "HEAD") and not same_origin(request):
        raise HTTPException(status_code=403, detail="refused: the form came from another site")
    return who


def same_origin(request: Request) -> bool:
    """Whether a browser says this request comes from a page of ours: Sec-Fetch-Site, else
    Origin (our pages send no referrer, so a browser's Origin may be "null": refused). A
    client that sends neither (curl, scripts) is not a browser acting for someone."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host", "")


def api_actor(authorization: Annotated[str | None, Header()] = None) -> str:
    parsed = parse_api_token(bearer_token(authorization) or "")
    return f"api-token:{parsed[0]}" if parsed is not None else "api"


ApiActor = Annotated[str, Depends(api_actor)]
