"""API routes for delivery: refused envelopes, collector events, tokens and revocation.

Listings page with `?limit=N&cursor=C` and answer `{"items": [...], "next": C|null}`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

from collector.store import Store

Item = dict[str, object]
Page = dict[str, object]
Require = Callable[[Store, str], Callable[..., str]]


def _page(items: list[Item], limit: int) -> Page:
    last = items[-1]["id"] if len(items) == limit else None
    return {"items": items, "next": None if last is None else str(last)}


def _cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit():
        raise HTTPException(status_code=400, detail="cursor: not one this API gave out")
    return int(cursor)


def add_routes(router: APIRouter, store: Store, require: Require) -> None:
    viewer = [Depends(require(store, "viewer"))]
    admin = [Depends(require(store, "admin"))]

    @router.get("/refusals", dependencies=viewer)
    def refusals(
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
        agent_id: str | None = None,
    ) -> Page:
        """Refused envelopes, newest first: agent, seq, code, reason, digest (kept 30 days)."""
        items = store.list_refusals(agent_id=agent_id, limit=limit, before_id=_cursor(cursor))
        return _page(items, limit)

    @router.get("/collector-events", dependencies=viewer)
    def collector_events(
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
        agent_id: str | None = None,
    ) -> Page:
        """shadowai.collector events (forks, clones, gaps, silence), newest first."""
        items = store.list_collector_events(
            agent_id=agent_id, limit=limit, before_id=_cursor(cursor)
        )
        return _page(items, limit)

    @router.post("/agents/{agent_id}/revoke", dependencies=admin)
    def revoke_agent(agent_id: str) -> Item:
        if not store.revoke_agent(agent_id):
            raise HTTPException(status_code=404, detail=f"no agent {agent_id}")
        return {"agent_id": agent_id, "revoked": True}

    @router.get("/tokens", dependencies=admin)
    def tokens() -> Page:
        """Enrollment tokens (never their secrets): group, uses, expiry, revoked."""
        return {"items": store.list_enrollment_tokens(), "next": None}

    @router.post("/tokens/{token_id}/revoke", dependencies=admin)
    def revoke_token(token_id: str) -> Item:
        if not store.revoke_enrollment_token(token_id, now=datetime.now(UTC)):
            raise HTTPException(status_code=404, detail=f"no enrollment token {token_id}")
        return {"token_id": token_id, "revoked": True}

    @router.get("/api-tokens", dependencies=admin)
    def api_tokens() -> Page:
        return {"items": store.list_api_tokens(), "next": None}

    @router.post("/api-tokens/{token_id}/revoke", dependencies=admin)
    def revoke_api_token(token_id: str) -> Item:
        if not store.revoke_api_token(token_id, now=datetime.now(UTC)):
            raise HTTPException(status_code=404, detail=f"no API token {token_id}")
        return {"token_id": token_id, "revoked": True}
