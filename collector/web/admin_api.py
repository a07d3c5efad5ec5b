"""Administration API: enrollment and API tokens (list, create, revoke), agent revocation,
and the audit log. Admin only; every change is audited under the calling token."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from collector.store import Store
from collector.store.audit import AuditFilter
from collector.store.queries import iso
from collector.web import token_admin as admin
from collector.web.acting import ApiActor
from collector.web.listing import listing_from, respond

Item = dict[str, object]
Require = Callable[[Store, str], Callable[..., str]]
# Ids we hand out are hex; anything else (a NUL byte, kilobytes of text) finds nothing anyway.
TOKEN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
AGENT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
TokenId = Annotated[str, Path(max_length=200)]
NO_STORE = {"Cache-Control": "no-store"}


class EnrollmentTokenBody(BaseModel):
    group: str = "default"
    uses: int = 1
    expires_in_hours: float = 24.0  # 0: never


class ApiTokenBody(BaseModel):
    role: str
    expires_in_hours: float = 0.0  # 0: until revoked


def checked(pattern: re.Pattern[str], value: str, what: str) -> str:
    if pattern.fullmatch(value) is None:
        raise HTTPException(status_code=404, detail=f"no {what} {value[:64]!r}")
    return value


def created(token: admin.NewToken, **fields: object) -> JSONResponse:
    body = {"token": token.text, "token_id": token.token_id, "expires_at": iso(token.expires_at)}
    return JSONResponse({**body, **fields}, status_code=201, headers=NO_STORE)


def add_routes(
    router: APIRouter, store: Store, require: Require, ca_fingerprint: str | None
) -> None:
    admin_only = [Depends(require(store, "admin"))]
    _enrollment_tokens(router, store, admin_only, ca_fingerprint)
    _api_tokens(router, store, admin_only)
    _agents_and_audit(router, store, admin_only)


def _enrollment_tokens(
    router: APIRouter, store: Store, admin_only: list[Any], ca_fingerprint: str | None
) -> None:
    @router.get("/tokens", dependencies=admin_only)
    def tokens(request: Request) -> Response:
        """Enrollment tokens (never their secrets): group, uses, uses_left, expiry, revoked."""
        listing = listing_from(request, sortable=("created_at",), default_sort="-created_at")
        return respond(request, store.page_enrollment_tokens(listing), filename="tokens")

    @router.post("/tokens", dependencies=admin_only)
    def create_token(body: EnrollmentTokenBody, actor: ApiActor) -> JSONResponse:
        """201 with `token`, shown this once; 409 if this collector has no CA to pin."""
        if ca_fingerprint is None:
            raise HTTPException(status_code=409, detail="this collector serves no TLS: no CA")
        token = admin.create_enrollment_token(
            store,
            ca_fingerprint=ca_fingerprint,
            group=body.group,
            uses=body.uses,
            expires_in_hours=body.expires_in_hours,
            actor=actor,
            now=datetime.now(UTC),
        )
        return created(token, group=body.group.strip(), max_uses=body.uses)

    @router.post("/tokens/{token_id}/revoke", dependencies=admin_only)
    def revoke_token(token_id: TokenId, actor: ApiActor) -> Item:
        checked(TOKEN_ID, token_id, "enrollment token")
        if not store.revoke_enrollment_token(token_id, now=datetime.now(UTC), actor=actor):
            raise HTTPException(status_code=404, detail=f"no enrollment token {token_id}")
        return {"token_id": token_id, "revoked": True}


def _api_tokens(router: APIRouter, store: Store, admin_only: list[Any]) -> None:
    @router.get("/api-tokens", dependencies=admin_only)
    def api_tokens(request: Request) -> Response:
        """API tokens (never their secrets): role, created_at, expires_at, revoked."""
        listing = listing_from(request, sortable=("created_at",), default_sort="-created_at")
        return respond(request, store.page_api_tokens(listing), filename="api-tokens")

    @router.post("/api-tokens", dependencies=admin_only)
    def create_api_token(body: ApiTokenBody, actor: ApiActor) -> JSONResponse:
        """201 with `token`, shown this once."""
        token = admin.create_api_token(
            store,
            role=body.role,
            expires_in_hours=body.expires_in_hours,
            actor=actor,
            now=datetime.now(UTC),
        )
        return created(token, role=body.role)

    @router.post("/api-tokens/{token_id}/revoke", dependencies=admin_only)
    def revoke_api_token(token_id: TokenId, actor: ApiActor) -> Item:
        checked(TOKEN_ID, token_id, "API token")
        if not store.revoke_api_token(token_id, now=datetime.now(UTC), actor=actor):
            raise HTTPException(status_code=404, detail=f"no API token {token_id}")
        return {"token_id": token_id, "revoked": True}


def _agents_and_audit(router: APIRouter, store: Store, admin_only: list[Any]) -> None:
    @router.post("/agents/{agent_id}/revoke", dependencies=admin_only)
    def revoke_agent(agent_id: TokenId, actor: ApiActor) -> Item:
        """Refuse the agent's envelopes from now on."""
        checked(AGENT_ID, agent_id, "agent")
        if not store.revoke_agent(agent_id, actor=actor):
            raise HTTPException(status_code=404, detail=f"no agent {agent_id}")
        return {"agent_id": agent_id, "revoked": True}

    @router.get("/audit", dependencies=admin_only)
    def audit(
        request: Request,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
    ) -> Response:
        """{"items": [{id, at, actor, action, target, before, after}], "next"}, newest first."""
        where = AuditFilter(actor=actor or None, action=action or None, target=target or None)
        listing = listing_from(request, sortable=("id",), default_sort="-id")
        return respond(request, store.page_audit(where, listing), filename="audit")
