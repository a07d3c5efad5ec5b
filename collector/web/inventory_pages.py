"""Dashboard pages of the inventory: overview, hosts, a host, models by digest, a digest,
model files, processes and search. Each list is one keyset page with sortable headers and
GET filter forms; `?format=csv` gives the page's rows as CSV."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from collector.paging import BadListing, Listing, Page
from collector.store import (
    DigestFilter,
    HostFilter,
    ModelFilter,
    ProcessFilter,
    Store,
)
from collector.store.filters import (
    DIGEST_SORTS,
    HOST_SORTS,
    MODEL_SORTS,
    PROCESS_SORTS,
    SEARCH_TYPES,
    check_digest,
    check_text,
)
from collector.store.overview import SILENT_AFTER
from collector.web import charts
from collector.web.inventory_api import search_page
from collector.web.listing import listing_params, respond, wants_csv
from collector.web.templating import environment, render
from collector.web.views import Pager, Sorter

Clock = Callable[[], datetime]
Filter = Annotated[str, Query(max_length=512)]
_SHOWN_ON_HOST = 100  # model files and processes listed on a host's page; the rest paged


def router(store: Store, *, has_rules: bool, clock: Clock | None = None) -> APIRouter:
    """The inventory pages over `store`; `clock` gives "now" for online/silent and charts."""
    now = clock or (lambda: datetime.now(UTC))
    pages = APIRouter(default_response_class=HTMLResponse, include_in_schema=False)
    env = environment()

    def show(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        return render(env, request, name, has_rules=has_rules, status_code=status_code, **context)

    def listing_page(
        request: Request, name: str, page: Page, listing: Listing, **context: Any
    ) -> Response:
        if wants_csv(request):
            return respond(request, page, filename=name.removesuffix(".html"))
        params = dict(request.query_params)
        path = request.url.path
        return show(
            request,
            name,
            page=page,
            sorter=Sorter(path, params, listing),
            pager=Pager(path, params, page.next),
            params=params,
            **context,
        )

    @pages.get("/")
    def overview(request: Request) -> Response:
        stats = store.overview(now())
        latest = store.list_alerts(status="open", limit=10)
        return show(
            request, "index.html", stats=stats, charts=charts.overview(stats), alerts=latest
        )

    @pages.get("/hosts")
    def hosts(
        request: Request,
        listing: Annotated[Listing, Depends(listing_params(HOST_SORTS, "name"))],
        q: Filter = "",
        group: Filter = "",
        os: Filter = "",
    ) -> Response:
        page = store.hosts_page(listing, HostFilter(q=q, group=group, os=os))
        return listing_page(request, "hosts.html", page, listing)

    @pages.get("/hosts/{agent_id}")
    def host(request: Request, agent_id: str) -> Response:
        try:
            found = store.host(check_text("agent_id", agent_id))
        except BadListing:
            found = None
        if found is None:
            return show(request, "not_found.html", 404, what=f"No host with agent id {agent_id}.")
        first = Listing(limit=_SHOWN_ON_HOST, sort="path")
        mine = ModelFilter(agent_id=agent_id)
        running = ProcessFilter(agent_id=agent_id)
        return show(
            request,
            "host.html",
            host=found,
            online=_online(found.get("last_seen"), now()),
            models=store.models_page(first, mine),
            processes=store.processes_page(Listing(limit=_SHOWN_ON_HOST, sort="name"), running),
            alerts=store.host_alerts(agent_id),
        )

    @pages.get("/models")
    def models(
        request: Request,
        listing: Annotated[Listing, Depends(listing_params(DIGEST_SORTS, "name"))],
        q: Filter = "",
        model_format: Filter = "",
        kind: Filter = "",
        risk: Filter = "",
        license: Filter = "",
    ) -> Response:
        where = DigestFilter(q=q, format=model_format, kind=kind, risk=risk, license=license)
        return listing_page(request, "models.html", store.digests_page(listing, where), listing)

    @pages.get("/models/files")
    def files(
        request: Request,
        listing: Annotated[Listing, Depends(listing_params(MODEL_SORTS, "path"))],
        q: Filter = "",
        agent_id: Filter = "",
        host: Filter = "",
        model_format: Filter = "",
        risk: Filter = "",
        kind: Filter = "",
        origin: Filter = "",
        sha256: Filter = "",
        include_removed: bool = False,
    ) -> Response:
        where = ModelFilter(
            agent_id=agent_id,
            host=host,
            format=model_format,
            risk=risk,
            kind=kind,
            origin=origin,
            sha256=sha256,
            q=q,
            include_removed=include_removed,
        )
        return listing_page(request, "files.html", store.models_page(listing, where), listing)

    @pages.get("/models/{sha256}")
    def digest(
        request: Request,
        sha256: str,
        listing: Annotated[Listing, Depends(listing_params(MODEL_SORTS, "agent_id"))],
    ) -> Response:
        try:
            found = store.digest(check_digest("sha256", sha256))
        except BadListing:
            found = None
        if found is None:
            return show(request, "not_found.html", 404, what="No model with that SHA-256.")
        page = store.models_page(listing, ModelFilter(sha256=str(found["sha256"])))
        return listing_page(request, "digest.html", page, listing, digest=found)

    @pages.get("/processes")
    def processes(
        request: Request,
        listing: Annotated[Listing, Depends(listing_params(PROCESS_SORTS, "name"))],
        q: Filter = "",
        agent_id: Filter = "",
        host: Filter = "",
        runtime: Filter = "",
        include_stopped: bool = False,
    ) -> Response:
        where = ProcessFilter(
            agent_id=agent_id, host=host, runtime=runtime, q=q, include_stopped=include_stopped
        )
        page = store.processes_page(listing, where)
        return listing_page(request, "processes.html", page, listing)

    @pages.get("/search")
    def search(
        request: Request,
        listing: Annotated[Listing, Depends(listing_params(("label",), "label"))],
        q: Filter = "",
        type: Filter = "",
    ) -> Response:
        kind = type if type in SEARCH_TYPES else None
        if not q.strip():
            return show(request, "search.html", search_q=q, kind=kind, groups={}, pager=None)
        shown = listing if kind else Listing(limit=min(listing.limit, 20), sort="label")
        page = search_page(store, q, kind, shown)
        groups: dict[str, list[dict[str, object]]] = {t: [] for t in SEARCH_TYPES}
        for hit in page.items:
            groups[str(hit["type"])].append(hit)
        pager = Pager(request.url.path, dict(request.query_params), page.next) if kind else None
        return show(
            request,
            "search.html",
            search_q=q,
            kind=kind,
            groups=groups,
            pager=pager,
            more=shown.limit,
        )

    return pages


def _online(last_seen: object, now: datetime) -> bool:
    if not isinstance(last_seen, str):
        return False
    return now - datetime.fromisoformat(last_seen) <= SILENT_AFTER
