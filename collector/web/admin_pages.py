"""Administration pages: agents (everyone reads, admins revoke), enrollment and API tokens
(admins create, shown once, and revoke), and the audit log (admins read)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from collector.store import Store
from collector.store.admin import AGENT_SORTS
from collector.store.audit import AuditFilter
from collector.web import token_admin as admin
from collector.web.acting import require
from collector.web.admin_api import AGENT_ID, NO_STORE, TOKEN_ID, checked
from collector.web.auth import ROLES, role_allows
from collector.web.links import first_link, next_link, sort_links
from collector.web.listing import listing_from

Render = Callable[..., HTMLResponse]
Field = Annotated[str, Form()]


def add_pages(router: APIRouter, store: Store, render: Render, ca_fingerprint: str | None) -> None:
    _agents(router, store, render)
    _tokens(router, store, render, ca_fingerprint)
    _api_tokens(router, store, render)

    @router.get("/audit")
    def audit(request: Request) -> HTMLResponse:
        require(request, "admin")
        params = request.query_params
        where = AuditFilter(
            actor=params.get("actor") or None,
            action=params.get("action") or None,
            target=params.get("target") or None,
        )
        listing = listing_from(request, sortable=("id",), default_sort="-id")
        page = store.page_audit(where, listing)
        return render(
            "audit.html",
            entries=page.items,
            filters=where,
            next_href=next_link(request, page),
            first_href=first_link(request),
        )


def _agents(router: APIRouter, store: Store, render: Render) -> None:
    @router.get("/agents")
    def agents(request: Request) -> HTMLResponse:
        who = require(request, "viewer")
        listing = listing_from(request, sortable=tuple(AGENT_SORTS), default_sort="host")
        group = request.query_params.get("group") or None
        page = store.page_agents(listing, group=group)
        return render(
            "agents.html",
            agents=page.items,
            group=group or "",
            sorts=sort_links(request, tuple(AGENT_SORTS), listing),
            next_href=next_link(request, page),
            first_href=first_link(request),
            can_admin=role_allows(who.role, "admin"),
        )

    @router.post("/agents/{agent_id}/revoke")
    def revoke(request: Request, agent_id: str) -> Response:
        who = require(request, "admin")
        checked(AGENT_ID, agent_id, "agent")
        if not store.revoke_agent(agent_id, actor=who.actor):
            raise HTTPException(status_code=404, detail=f"no agent {agent_id}")
        return RedirectResponse("/agents", status_code=303)


def _number(text: str, field: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise admin.AdminError(field, f"{text[:20]!r} is not a number") from None


def _tokens(router: APIRouter, store: Store, render: Render, ca_fingerprint: str | None) -> None:
    def show(request: Request, error: str = "", status: int = 200) -> HTMLResponse:
        require(request, "admin")
        listing = listing_from(request, sortable=("created_at",), default_sort="-created_at")
        page = store.page_enrollment_tokens(listing)
        response = render(
            "tokens.html",
            tokens=page.items,
            next_href=next_link(request, page),
            first_href=first_link(request),
            can_create=ca_fingerprint is not None,
            error=error,
        )
        response.status_code = status
        return response

    @router.get("/tokens")
    def tokens(request: Request) -> HTMLResponse:
        return show(request)

    @router.post("/tokens")
    def create(
        request: Request,
        group: Field = "default",
        uses: Field = "1",
        expires_in_hours: Field = "24",
    ) -> Response:
        who = require(request, "admin")
        if ca_fingerprint is None:
            return show(request, "this collector serves no TLS: no CA to pin", 409)
        try:
            count = _number(uses, "uses")
            token = admin.create_enrollment_token(
                store,
                ca_fingerprint=ca_fingerprint,
                group=group,
                uses=int(count) if count.is_integer() else -1,
                expires_in_hours=_number(expires_in_hours, "expires_in_hours"),
                actor=who.actor,
                now=datetime.now(UTC),
            )
        except admin.AdminError as exc:
            return show(request, str(exc), 422)
        shown = render("token_created.html", kind="enrollment", token=token, back="/tokens")
        shown.headers.update(NO_STORE)
        return shown

    @router.post("/tokens/{token_id}/revoke")
    def revoke(request: Request, token_id: str) -> Response:
        who = require(request, "admin")
        checked(TOKEN_ID, token_id, "enrollment token")
        if not store.revoke_enrollment_token(token_id, now=datetime.now(UTC), actor=who.actor):
            raise HTTPException(status_code=404, detail=f"no enrollment token {token_id}")
        return RedirectResponse("/tokens", status_code=303)


def _api_tokens(router: APIRouter, store: Store, render: Render) -> None:
    def show(request: Request, error: str = "", status: int = 200) -> HTMLResponse:
        require(request, "admin")
        listing = listing_from(request, sortable=("created_at",), default_sort="-created_at")
        page = store.page_api_tokens(listing)
        response = render(
            "api_tokens.html",
            tokens=page.items,
            roles=ROLES,
            next_href=next_link(request, page),
            first_href=first_link(request),
            error=error,
        )
        response.status_code = status
        return response

    @router.get("/api-tokens")
    def api_tokens(request: Request) -> HTMLResponse:
        return show(request)

    @router.post("/api-tokens")
    def create(request: Request, role: Field = "", expires_in_hours: Field = "0") -> Response:
        who = require(request, "admin")
        try:
            token = admin.create_api_token(
                store,
                role=role,
                expires_in_hours=_number(expires_in_hours, "expires_in_hours"),
                actor=who.actor,
                now=datetime.now(UTC),
            )
        except admin.AdminError as exc:
            return show(request, str(exc), 422)
        shown = render("token_created.html", kind="API", token=token, back="/api-tokens")
        shown.headers.update(NO_STORE)
        return shown

    @router.post("/api-tokens/{token_id}/revoke")
    def revoke(request: Request, token_id: str) -> Response:
        who = require(request, "admin")
        checked(TOKEN_ID, token_id, "API token")
        if not store.revoke_api_token(token_id, now=datetime.now(UTC), actor=who.actor):
            raise HTTPException(status_code=404, detail=f"no API token {token_id}")
        return RedirectResponse("/api-tokens", status_code=303)
