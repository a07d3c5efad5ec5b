"""GET /healthz (no login: liveness and store reachability) and GET /metrics (Prometheus).

On the main HTTP port /metrics takes a bearer API token of any role; `serve --metrics
HOST:PORT` adds a listener that serves /metrics alone, without a token, for a scraper on a
network the operator trusts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, FastAPI, Header, HTTPException, Response
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError

from collector.store import Store
from collector.telemetry import CONTENT_TYPE
from collector.web.auth import ROLES, bearer_token, parse_api_token

log = logging.getLogger(__name__)

Scrape = Callable[[], bytes]  # the exposition text (collector.telemetry.PrometheusMetrics)


def router(store: Store, metrics: Scrape | None) -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    @routes.get("/healthz")
    def healthz() -> JSONResponse:
        """200 {"status": "ok", "store": "ok"}; 503 with the reason when the store fails."""
        try:
            store.ping()
        except DBAPIError as exc:
            reason = (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]
            return JSONResponse({"status": "unavailable", "store": reason}, status_code=503)
        return JSONResponse({"status": "ok", "store": "ok"})

    if metrics is not None:
        scrape = metrics

        @routes.get("/metrics")
        def metrics_with_token(authorization: Annotated[str | None, Header()] = None) -> Response:
            _check_token(store, authorization)
            return Response(scrape(), media_type=CONTENT_TYPE)

    return routes


def _check_token(store: Store, authorization: str | None) -> None:
    parsed = parse_api_token(bearer_token(authorization) or "")
    try:
        role = (
            None
            if parsed is None
            else store.api_token_role(token_id=parsed[0], secret_sha256=parsed[1])
        )
    except DBAPIError:
        # Cannot check the token: say so rather than 500; shadowai_store_up needs the store too.
        raise HTTPException(status_code=503, detail="the store is unavailable") from None
    if role not in ROLES:
        raise HTTPException(
            status_code=401,
            detail="missing or invalid API token",
            headers={"WWW-Authenticate": "Bearer"},
        )


def scrape_app(metrics: Scrape) -> FastAPI:
    """The scrape-only listener: /metrics and nothing else, no token."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/metrics")
    def scrape() -> Response:
        return Response(metrics(), media_type=CONTENT_TYPE)

    return app
