"""API routes for delivery: refused envelopes and collector events.

Listings page with `?limit=N&cursor=C` and answer `{"items": [...], "next": C|null}`.
"""

from __future__ import annotations

from collections.abc import Callable
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
