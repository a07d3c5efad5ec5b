"""The dashboard and REST API: thin handlers over Store queries.

Handlers are plain `def`s, so FastAPI runs them (and their store calls) in its
threadpool; the store's engine pools connections across those threads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from collector.paging import BadListing
from collector.store import AgentState, Store
from collector.store.triage_values import TriageError
from collector.web import (
    admin_api,
    admin_pages,
    delivery_api,
    export_api,
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
from collector.web.throttle import ThrottlePolicy
from collector.web.token_admin import AdminError

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
    # No /docs: Swagger UI loads its scripts from a CDN, and nothing here may.
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
    env, has_rules = _environment(), rules_summary is not None
    login.add_routes(login_routes, logins, lambda name, ctx: render(env, name, ctx, has_rules))
    app.include_router(login_routes)
    app.include_router(observe.router(store, metrics))  # /healthz, /metrics
    app.include_router(_pages(store, rules_summary, rules_status, ca_fingerprint))
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
    env = _environment()

    def page(name: str, **context: object) -> HTMLResponse:
        return HTMLResponse(render(env, name, context, rules_summary is not None))

    @router.get("/")
    def overview() -> HTMLResponse:
        latest = store.list_alerts(status="open", limit=10)
        return page("index.html", counts=store.counts(), alerts=latest)

    @router.get("/hosts")
    def hosts() -> HTMLResponse:
        return page("hosts.html", hosts=store.list_hosts())

    @router.get("/models")
    def models(include_removed: bool = False) -> HTMLResponse:
        rows = store.list_models(include_removed=include_removed)
        return page("models.html", models=rows, include_removed=include_removed)

    @router.get("/processes")
    def processes() -> HTMLResponse:
        return page("processes.html", processes=store.list_processes())

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
    }
    full.update(context)
    return env.get_template(name).render(**full)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(_HERE / "templates"), autoescape=True, undefined=StrictUndefined
    )
    env.filters.update(
        count=human_count,
        bytes=human_bytes,
        short_sha=short_sha,
        when=when,
        text=text,
        json_text=json_text,
    )
    return env


def text(value: object) -> str:
    """A table cell: empty for missing, lists joined."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(text(item) for item in value)
    return str(value)


def json_text(value: object) -> str:
    """Changed fields of an audit entry as compact JSON; empty for none."""
    return "" if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


def human_count(value: object) -> str:
    """7241732096 -> "7.2B", the way model sizes are spoken of."""
    if isinstance(value, bool) or not isinstance(value, int):
        return text(value)
    for scale, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if abs(value) >= scale:
            return _short(value / scale) + suffix
    return str(value)


def human_bytes(value: object) -> str:
    """4368439584 -> "4.4 GB" (decimal units, as disk tools and model hubs show them)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return text(value)
    for scale, suffix in ((10**12, "TB"), (10**9, "GB"), (10**6, "MB"), (10**3, "kB")):
        if abs(value) >= scale:
            return f"{_short(value / scale)} {suffix}"
    return f"{value} B"


def _short(number: float) -> str:
    return f"{number:.0f}" if abs(number) >= 100 else f"{number:.1f}".removesuffix(".0")


def short_sha(value: object) -> str:
    return value[:12] if isinstance(value, str) else ""


def when(value: object) -> str:
    """An ISO 8601 time as "2024-05-01 12:00:03 UTC"; anything else as it is."""
    if not isinstance(value, str):
        return text(value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    return parsed.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if parsed.utcoffset() is not None else "")


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
    """Every GET answers {"items": [...]}: room for paging later without breaking clients."""
    router = APIRouter()
    _inventory_api(router, store)
    triage_api.add_routes(router, store, _require)  # alerts: list, triage, bulk
    rules_pages.add_routes(router, store, _require, rules_summary, rules_status)
    admin_api.add_routes(router, store, _require, ca_fingerprint)  # tokens, audit
    delivery_api.add_routes(router, store, _require)  # refusals, collector events
    export_api.add_routes(router, store, _require)  # CycloneDX of the fleet or a host
    return router


def _inventory_api(router: APIRouter, store: Store) -> None:
    viewer = [Depends(_require(store, "viewer"))]

    @router.get("/hosts", dependencies=viewer)
    def hosts() -> Items:
        """{"items": [host]}: one per enrolled agent, with model_count and open_alerts."""
        return {"items": store.list_hosts()}

    @router.get("/models", dependencies=viewer)
    def models(include_removed: bool = False) -> Items:
        """{"items": [model file]}: file.* and ai.model.* fields, first/last seen."""
        return {"items": store.list_models(include_removed=include_removed)}

    @router.get("/processes", dependencies=viewer)
    def processes(include_stopped: bool = False) -> Items:
        """{"items": [inference process]}: process.*, ai.runtime.*, ai.listen.* fields."""
        return {"items": store.list_processes(include_stopped=include_stopped)}

    @router.get("/events", dependencies=viewer)
    def events(
        limit: Annotated[int, Query(ge=1, le=1000)] = 100, dataset: str | None = None
    ) -> Items:
        """{"items": [{agent_id, seq, received_at, event}]}: newest first."""
        return {"items": store.list_events(limit=limit, dataset=dataset)}

    @router.get("/agents", dependencies=viewer)
    def agents() -> Items:
        """{"items": [agent]}: enrollment and chain state; the public key as hex; `delivery`
        counts refusals by code, gaps, duplicates and snapshot requests."""
        counters = store.delivery_counters()
        return {
            "items": [
                {**agent_item(s), "delivery": counters.get(s.record.agent_id, {})}
                for s in store.list_agents()
            ]
        }


def agent_item(state: AgentState) -> Item:
    record = state.record
    return {
        "agent_id": record.agent_id,
        "host.name": record.host_name,
        "host.os.type": record.os_type,
        "host.group": record.group,
        "agent.version": record.agent_version,
        "public_key": record.public_key.hex(),
        "enrolled_at": record.enrolled_at.isoformat(),
        "last_seq": state.last_seq,
        "revoked": state.revoked,
        "last_seen": None if state.last_seen is None else state.last_seen.isoformat(),
    }
