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
from collector.store import DigestFilter, HostFilter, ModelFilter, ProcessFilter, Store
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
Paged = Callable[..., Listing]
_SHOWN_ON_HOST = 100  # model files and processes listed on a host's page; the rest paged
_HITS_PER_KIND = 20  # search hits of each kind on the page before "More"


def router(store: Store, *, has_rules: bool, clock: Clock | None = None) -> APIRouter:
    """The inventory pages over `store`; `clock` gives "now" for online/silent and charts."""
    pages = _Pages(store, has_rules, clock or (lambda: datetime.now(UTC)))
    routes = APIRouter(default_response_class=HTMLResponse, include_in_schema=False)
    # /models/files before /models/{sha256}: the first match wins.
    handlers: list[tuple[str, Callable[..., Response]]] = [
        ("/", pages.overview),
        ("/hosts", pages.hosts),
        ("/hosts/{agent_id}", pages.host),
        ("/models", pages.models),
        ("/models/files", pages.files),
        ("/models/{sha256}", pages.digest),
        ("/processes", pages.processes),
        ("/search", pages.search),
    ]
    for path, handler in handlers:
        routes.add_api_route(path, handler, methods=["GET"])
    return routes


# Each listing's paging and sort parameters, checked (a bad one is a 400).
_HOSTS: Paged = listing_params(HOST_SORTS, "name")
_DIGESTS: Paged = listing_params(DIGEST_SORTS, "name")
_FILES: Paged = listing_params(MODEL_SORTS, "path")
_WHERE: Paged = listing_params(MODEL_SORTS, "agent_id")
_PROCESSES: Paged = listing_params(PROCESS_SORTS, "name")
_HITS: Paged = listing_params(("label",), "label")


class _Pages:
    """One method per page; FastAPI reads each one's parameters from its signature."""

    def __init__(self, store: Store, has_rules: bool, now: Clock) -> None:
        self.store, self.has_rules, self.now = store, has_rules, now
        self.env = environment()

    def show(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        return render(
            self.env, request, name, has_rules=self.has_rules, status_code=status, **context
        )

    def listing(
        self, request: Request, name: str, page: Page, listing: Listing, **context: Any
    ) -> Response:
        """A page of rows with its sort links and page links, or its rows as CSV."""
        if wants_csv(request):
            return respond(request, page, filename=name.removesuffix(".html"))
        params, path = dict(request.query_params), request.url.path
        sorter, pager = Sorter(path, params, listing), Pager(path, params, page.next)
        return self.show(
            request, name, page=page, sorter=sorter, pager=pager, params=params, **context
        )

    def not_found(self, request: Request, what: str) -> Response:
        return self.show(request, "not_found.html", 404, what=what)

    def overview(self, request: Request) -> Response:
        stats = self.store.overview(self.now())
        latest = self.store.list_alerts(status="open", limit=10)
        drawn = charts.overview(stats)
        return self.show(request, "index.html", stats=stats, charts=drawn, alerts=latest)

    def hosts(
        self,
        request: Request,
        listing: Annotated[Listing, Depends(_HOSTS)],
        q: Filter = "",
        group: Filter = "",
        os: Filter = "",
    ) -> Response:
        page = self.store.hosts_page(listing, HostFilter(q=q, group=group, os=os))
        return self.listing(request, "hosts.html", page, listing)

    def host(self, request: Request, agent_id: str) -> Response:
        try:
            found = self.store.host(check_text("agent_id", agent_id))
        except BadListing:
            found = None
        if found is None:
            return self.not_found(request, f"No host with agent id {agent_id}.")
        models = self.store.models_page(
            Listing(limit=_SHOWN_ON_HOST, sort="path"), ModelFilter(agent_id=agent_id)
        )
        processes = self.store.processes_page(
            Listing(limit=_SHOWN_ON_HOST, sort="name"), ProcessFilter(agent_id=agent_id)
        )
        return self.show(
            request,
            "host.html",
            host=found,
            online=_online(found.get("last_seen"), self.now()),
            models=models,
            processes=processes,
            alerts=self.store.host_alerts(agent_id),
        )

    def models(
        self,
        request: Request,
        listing: Annotated[Listing, Depends(_DIGESTS)],
        q: Filter = "",
        model_format: Filter = "",
        kind: Filter = "",
        risk: Filter = "",
        license: Filter = "",
    ) -> Response:
        where = DigestFilter(q=q, format=model_format, kind=kind, risk=risk, license=license)
        return self.listing(
            request, "models.html", self.store.digests_page(listing, where), listing
        )

    def files(
        self,
        request: Request,
        listing: Annotated[Listing, Depends(_FILES)],
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
        return self.listing(request, "files.html", self.store.models_page(listing, where), listing)

    def digest(
        self, request: Request, sha256: str, listing: Annotated[Listing, Depends(_WHERE)]
    ) -> Response:
        try:
            found = self.store.digest(check_digest("sha256", sha256))
        except BadListing:
            found = None
        if found is None:
            return self.not_found(request, "No model with that SHA-256.")
        page = self.store.models_page(listing, ModelFilter(sha256=str(found["sha256"])))
        return self.listing(request, "digest.html", page, listing, digest=found)

    def processes(
        self,
        request: Request,
        listing: Annotated[Listing, Depends(_PROCESSES)],
        q: Filter = "",
        agent_id: Filter = "",
        host: Filter = "",
        runtime: Filter = "",
        include_stopped: bool = False,
    ) -> Response:
        where = ProcessFilter(
            agent_id=agent_id, host=host, runtime=runtime, q=q, include_stopped=include_stopped
        )
        page = self.store.processes_page(listing, where)
        return self.listing(request, "processes.html", page, listing)

    def search(
        self,
        request: Request,
        listing: Annotated[Listing, Depends(_HITS)],
        q: Filter = "",
        type: Filter = "",
    ) -> Response:
        """Hits grouped by kind; with `type`, one kind a page at a time."""
        kind = type if type in SEARCH_TYPES else None
        context: dict[str, Any] = {"search_q": q, "kind": kind, "groups": {}, "pager": None}
        if not q.strip():
            return self.show(request, "search.html", **context)
        shown = listing if kind else Listing(limit=min(listing.limit, _HITS_PER_KIND), sort="label")
        page = search_page(self.store, q, kind, shown)
        groups: dict[str, list[dict[str, object]]] = {t: [] for t in SEARCH_TYPES}
        for hit in page.items:
            groups[str(hit["type"])].append(hit)
        if kind:
            context["pager"] = Pager(request.url.path, dict(request.query_params), page.next)
        context.update(groups=groups, more=shown.limit)
        return self.show(request, "search.html", **context)


def _online(last_seen: object, now: datetime) -> bool:
    if not isinstance(last_seen, str):
        return False
    return now - datetime.fromisoformat(last_seen) <= SILENT_AFTER
