"""The dashboard and REST API: thin handlers over Store queries.

Handlers are plain `def`s, so FastAPI runs them (and their store calls) in its
threadpool; the store's engine pools connections across those threads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment

from collector.paging import BadListing
from collector.store import Store
from collector.store.triage_values import TriageError
from collector.web import (
    admin_api,
    admin_pages,
    apidocs,
    delivery_api,
    export_api,
    inventory_api,
    inventory_pages,
    login,
    observe,
    rules_pages,
    triage_api,
    triage_pages,
)
from collector.web.auth import bearer_token, parse_api_token, role_allows
from collector.web.guard import Guard
from collector.web.hosts import HostAllowList
from collector.web.login import Logins
from collector.web.passwords import Passwords
from collector.web.session import AccessSettings, current_viewer
from collector.web.templating import (  # the filters are re-exported for existing imports
    environment,
    human_bytes,
    human_count,
    short_sha,
    text,
    when,
)
from collector.web.throttle import ThrottlePolicy
from collector.web.token_admin import AdminError

__all__ = ["create_app", "human_bytes", "human_count", "short_sha", "text", "when"]

# Anything list-of-mappings shaped; the governance side decides the keys (id, title, ...).
RulesSummary = Callable[[], Sequence[Mapping[str, object]]]
RulesStatus = Callable[[], Mapping[str, object]]  # last good load, error, expired exceptions
Item = dict[str, object]
Items = dict[str, list[Item]]

_HERE = Path(__file__).parent


def create_app(
    store: Store,
    *,
    rules_summary: RulesSummary | None = None,
    rules_status: RulesStatus | None = None,
    access: AccessSettings | None = None,
    hosts: HostAllowList | None = None,
    now: Callable[[], datetime] | None = None,
    passwords: Passwords | None = None,
    throttle: ThrottlePolicy | None = None,
    metrics: observe.Scrape | None = None,
    ca_fingerprint: str | None = None,
) -> FastAPI:
    """The collector's HTTP app; `ca_fingerprint` (of the CA agents pin) lets admins create
    enrollment tokens from the pages and the API.

    Dashboard pages need a login session (collector/web/guard.py); every /api/v1/ call
    needs a bearer API token. `hosts` (default: loopback names on any port) are the Host
    headers served; `now` is the clock sessions and logins are judged by.
    """
    settings = access or AccessSettings()
    clock = now or _utc_now
    # No Swagger UI: it loads its scripts from a CDN, and nothing here may; /api/docs is
    # a server-rendered reference instead (collector.web.apidocs).
    app = FastAPI(
        title="shadowai collector",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
    )

    app.add_middleware(
        Guard,
        store=store,
        settings=settings,
        hosts=hosts or HostAllowList.local(),
        now=clock,
    )

    @app.exception_handler(BadListing)
    async def bad_listing(request: Request, exc: BadListing) -> Response:
        return JSONResponse({"detail": str(exc), "field": exc.field}, status_code=400)

    @app.exception_handler(TriageError)
    @app.exception_handler(AdminError)
    async def bad_value(request: Request, exc: TriageError | AdminError) -> Response:
        return JSONResponse({"detail": str(exc), "field": exc.field}, status_code=422)

    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    logins = Logins(store, passwords or Passwords(), settings, throttle or ThrottlePolicy(), clock)
    login_routes = APIRouter(include_in_schema=False)
    env, has_rules = environment(), rules_summary is not None
    login.add_routes(login_routes, logins, lambda name, ctx: render(env, name, ctx, has_rules))
    app.include_router(login_routes)
    app.include_router(observe.router(store, metrics))  # /healthz, /metrics
    app.include_router(inventory_pages.router(store, has_rules=has_rules))
    app.include_router(_pages(store, rules_summary, rules_status, ca_fingerprint))
    app.include_router(apidocs.router(has_rules=has_rules))
    app.include_router(_api(store, rules_summary, rules_status, ca_fingerprint), prefix="/api/v1")
    return app


# pages


def _pages(
    store: Store,
    rules_summary: RulesSummary | None,
    rules_status: RulesStatus | None,
    ca_fingerprint: str | None,
) -> APIRouter:
    router = APIRouter(default_response_class=HTMLResponse, include_in_schema=False)
    env = environment()

    def page(name: str, **context: object) -> HTMLResponse:
        return HTMLResponse(render(env, name, context, rules_summary is not None))

    triage_pages.add_pages(router, store, page)
    if rules_summary is not None:
        rules_pages.add_page(router, store, page, rules_summary, rules_status)
    admin_pages.add_pages(router, store, page, ca_fingerprint)
    return router


def render(env: Environment, name: str, context: Mapping[str, object], has_rules: bool) -> str:
    """A template with what every page shows: the signed-in user (username, role) or None,
    and the session's CSRF token for its forms (a page's own values win)."""
    viewer = current_viewer.get()
    full: dict[str, object] = {
        "has_rules": has_rules,
        "user": None if viewer is None else {"username": viewer.username, "role": viewer.role},
        "csrf_token": "" if viewer is None else viewer.csrf_token,
        "search_q": "",
    }
    full.update(context)
    return env.get_template(name).render(**full)


def _utc_now() -> datetime:
    return datetime.now(UTC)


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
    store: Store,
    rules_summary: RulesSummary | None,
    rules_status: RulesStatus | None,
    ca_fingerprint: str | None,
) -> APIRouter:
    """Every listing answers {"items": [...], "next": cursor} (collector.web.listing)."""
    router = APIRouter()
    inventory_api.add_routes(router, store, _require)
    triage_api.add_routes(router, store, _require)  # alerts: list, triage, bulk
    rules_pages.add_routes(router, store, _require, rules_summary, rules_status)
    admin_api.add_routes(router, store, _require, ca_fingerprint)  # tokens, audit
    delivery_api.add_routes(router, store, _require)  # refusals, collector events
    export_api.add_routes(router, store, _require)  # CycloneDX of the fleet or a host
    return router
