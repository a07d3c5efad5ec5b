"""The dashboard and REST API: thin handlers over Store queries.

Handlers are plain `def`s, so FastAPI runs them (and their store calls) in its
threadpool; the store's engine pools connections across those threads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from collector.paging import BadListing
from collector.store import ALERT_STATUSES, Store
from collector.web import apidocs, delivery_api, export_api, inventory_api, inventory_pages
from collector.web.auth import bearer_token, parse_api_token, role_allows
from collector.web.templating import (  # the filters are re-exported for existing imports
    environment,
    human_bytes,
    human_count,
    short_sha,
    text,
    when,
)

__all__ = ["create_app", "human_bytes", "human_count", "short_sha", "text", "when"]

# Anything list-of-mappings shaped; the governance side decides the keys (id, title, ...).
RulesSummary = Callable[[], Sequence[Mapping[str, object]]]
RulesStatus = Callable[[], Mapping[str, object]]  # last good load, error, expired exceptions
Item = dict[str, object]
Items = dict[str, list[Item]]
AlertStatus = Literal["open", "acknowledged", "resolved", "suppressed"]

_HERE = Path(__file__).parent
_SECURITY_HEADERS = {
    # Pages need nothing but our own stylesheet; anything injected cannot run or phone home.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class StatusChange(BaseModel):
    status: AlertStatus
    until: datetime | None = None  # required for suppressed, and only for it
    reason: str = ""


def create_app(
    store: Store,
    *,
    rules_summary: RulesSummary | None = None,
    rules_status: RulesStatus | None = None,
) -> FastAPI:
    """The collector's HTTP app.

    The dashboard pages need no login yet: `shadowai-collector serve` binds HTTP to
    loopback unless told otherwise. Every /api/v1/ call needs a bearer API token.
    """
    # No Swagger UI: it loads its scripts from a CDN, and nothing here may; /api/docs is
    # a server-rendered reference instead (collector.web.apidocs).
    app = FastAPI(
        title="shadowai collector",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
    )

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(BadListing)
    async def bad_listing(request: Request, exc: BadListing) -> Response:
        return JSONResponse({"detail": str(exc), "field": exc.field}, status_code=400)

    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    has_rules = rules_summary is not None
    app.include_router(inventory_pages.router(store, has_rules=has_rules))
    app.include_router(_pages(store, rules_summary, rules_status))
    app.include_router(apidocs.router(has_rules=has_rules))
    app.include_router(_api(store, rules_summary, rules_status), prefix="/api/v1")
    return app


# pages


def _pages(
    store: Store, rules_summary: RulesSummary | None, rules_status: RulesStatus | None
) -> APIRouter:
    router = APIRouter(default_response_class=HTMLResponse, include_in_schema=False)
    env = environment()

    def page(name: str, **context: object) -> HTMLResponse:
        context["has_rules"] = rules_summary is not None
        return HTMLResponse(env.get_template(name).render(**context))

    @router.get("/alerts")
    def alerts(status: str | None = None) -> HTMLResponse:
        chosen = status if status in ALERT_STATUSES else None
        rows = store.list_alerts(status=chosen)
        return page("alerts.html", alerts=rows, status=chosen, statuses=ALERT_STATUSES)

    if rules_summary is not None:
        summary = rules_summary

        @router.get("/rules")
        def rules() -> HTMLResponse:
            rows = [dict(rule) for rule in summary()]
            status = dict(rules_status()) if rules_status is not None else {}
            return page("rules.html", rules=rows, columns=_columns(rows), status=status)

    return router


def _columns(rows: list[Item]) -> list[str]:
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns)


# API


def _require(store: Store, required: str) -> Callable[..., str]:
    def check(authorization: Annotated[str | None, Header()] = None) -> str:
        parsed = parse_api_token(bearer_token(authorization) or "")
        role = (
            None
            if parsed is None
            else store.api_token_role(token_id=parsed[0], secret_sha256=parsed[1])
        )
        if role is None:
            raise HTTPException(
                status_code=401,
                detail="missing or invalid API token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not role_allows(role, required):
            raise HTTPException(status_code=403, detail=f"needs role {required}, token has {role}")
        return role

    return check


def _api(
    store: Store, rules_summary: RulesSummary | None, rules_status: RulesStatus | None
) -> APIRouter:
    """Every listing answers {"items": [...], "next": cursor} (collector.web.listing)."""
    router = APIRouter()
    inventory_api.add_routes(router, store, _require)
    _alerts_api(router, store, rules_summary, rules_status)
    delivery_api.add_routes(router, store, _require)  # refusals, collector events, tokens
    export_api.add_routes(router, store, _require)  # CycloneDX of the fleet or a host
    return router


def _who(authorization: Annotated[str | None, Header()] = None) -> str:
    """Who changes an alert: the API token's id (its secret never leaves the header)."""
    parsed = parse_api_token(bearer_token(authorization) or "")
    return f"api-token:{parsed[0]}" if parsed is not None else "api"


def _alerts_api(
    router: APIRouter,
    store: Store,
    rules_summary: RulesSummary | None,
    rules_status: RulesStatus | None,
) -> None:
    viewer = [Depends(_require(store, "viewer"))]
    analyst = [Depends(_require(store, "analyst"))]

    @router.get("/alerts", dependencies=viewer)
    def alerts(status: AlertStatus | None = None) -> Items:
        """{"items": [alert]}: most recently seen first, optionally of one status."""
        return {"items": store.list_alerts(status=status)}

    @router.post("/alerts/{alert_id}/status", dependencies=analyst)
    def set_status(alert_id: int, change: StatusChange, who: Annotated[str, Depends(_who)]) -> Item:
        """{"id", "status", "by", "until"} of the changed alert; 404 if there is none, 422 for
        suppressed without a future until (or until on another status)."""
        until = change.until
        if until is not None and until.tzinfo is None:
            raise HTTPException(status_code=422, detail="until needs a time zone (UTC: ...Z)")
        try:
            changed = store.set_alert_status(
                alert_id, change.status, by=who, until=until, reason=change.reason
            )
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        if not changed:
            raise HTTPException(status_code=404, detail=f"no alert {alert_id}")
        shown = None if until is None else until.isoformat()
        return {"id": alert_id, "status": change.status, "by": who, "until": shown}

    @router.get("/alerts/{alert_id}/history", dependencies=viewer)
    def alert_history(alert_id: int) -> Items:
        """{"items": [{status, by, at, reason, until}]}: every status change, oldest first."""
        return {"items": store.alert_history(alert_id)}

    @router.get("/rules/status", dependencies=viewer)
    def rules_state() -> Item:
        """The rule set's last good load, its last reload error, and expired exceptions."""
        if rules_status is None:
            raise HTTPException(status_code=404, detail="no live rule set")
        return dict(rules_status())

    @router.get("/rules", dependencies=viewer)
    def rules() -> Items:
        """{"items": [rule summary]}; 404 when this collector was given no rules."""
        if rules_summary is None:
            raise HTTPException(status_code=404, detail="no rule set loaded")
        return {"items": [dict(rule) for rule in rules_summary()]}
