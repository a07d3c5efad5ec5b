"""API routes for the inventory: hosts, model files, models by digest, processes, events,
agents and search. Every listing pages with `limit` and `cursor`, sorts with `sort`, and
answers JSON or CSV (collector.web.listing); a bad value is a 4xx naming it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from collector.paging import BadListing, Listing, Page
from collector.store import (
    AgentFilter,
    DigestFilter,
    EventFilter,
    HostFilter,
    ModelFilter,
    ProcessFilter,
    Store,
    activity,
    hosts,
    listings,
    overview,
)
from collector.store.filters import (
    AGENT_SORTS,
    DIGEST_SORTS,
    EVENT_SORTS,
    HOST_SORTS,
    MODEL_SORTS,
    PROCESS_SORTS,
    SEARCH_TYPES,
    check_digest,
    check_text,
)
from collector.web.listing import CSV_RESPONSE, listing_params, page_model, respond
from collector.web.views import hit_link

Require = Callable[[Store, str], Callable[..., str]]
Text = Annotated[str, Query(max_length=512)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such row"}}

HostPage = page_model("Host", hosts.HOST_COLUMNS)
ModelPage = page_model("ModelFile", listings.MODEL_COLUMNS)
DigestPage = page_model("Digest", listings.DIGEST_COLUMNS)
DigestFiles = page_model("DigestFiles", listings.MODEL_COLUMNS, digest=(dict[str, Any], ...))
ProcessPage = page_model("Process", listings.PROCESS_COLUMNS)
EventPage = page_model("Event", activity.EVENT_COLUMNS)
AgentPage = page_model("Agent", activity.AGENT_COLUMNS)
SearchPage = page_model("SearchHit", [*overview.SEARCH_COLUMNS, "link"])


class HostDetail(BaseModel):
    """One host: the listing's fields plus enrollment, process_count and health."""

    model_config = {"extra": "allow"}


def add_routes(router: APIRouter, store: Store, require: Require) -> None:
    viewer = [Depends(require(store, "viewer"))]
    _hosts(router, store, viewer)
    _models(router, store, viewer)
    _activity(router, store, viewer)


def _hosts(router: APIRouter, store: Store, viewer: list[Any]) -> None:
    @router.get("/hosts", dependencies=viewer, response_model=HostPage, responses=CSV_RESPONSE)
    def hosts(
        request: Request,
        listing: Annotated[Listing, Depends(listing_params(HOST_SORTS, "name"))],
        q: Annotated[str, Query(max_length=512, description="Part of the host name")] = "",
        group: Text = "",
        os: Annotated[str, Query(max_length=512, description="host.os.type")] = "",
    ) -> Response:
        """Hosts (one per enrolled agent) with their live model count and open alerts."""
        page = store.hosts_page(listing, HostFilter(q=q, group=group, os=os))
        return respond(request, page, filename="hosts")

    @router.get(
        "/hosts/{agent_id}", dependencies=viewer, response_model=HostDetail, responses=NOT_FOUND
    )
    def host(agent_id: Annotated[str, Path(max_length=512)]) -> Response:
        """A host with its enrollment (enrolled_at, version, group, last_seq, revoked), counts
        and latest agent health (the agent.health.* fields of its last agent_health event)."""
        found = store.host(check_text("agent_id", agent_id))
        if found is None:
            raise HTTPException(status_code=404, detail=f"no host with agent id {agent_id!r}")
        return JSONResponse(found)


def _models(router: APIRouter, store: Store, viewer: list[Any]) -> None:
    @router.get("/models", dependencies=viewer, response_model=ModelPage, responses=CSV_RESPONSE)
    def models(
        request: Request,
        listing: Annotated[Listing, Depends(listing_params(MODEL_SORTS, "path"))],
        agent_id: Text = "",
        host: Annotated[str, Query(max_length=512, description="A host name, exactly")] = "",
        model_format: Annotated[
            str, Query(max_length=512, description="ai.model.format (`format` is csv or json)")
        ] = "",
        risk: Annotated[str, Query(max_length=512, description="ai.model.risk")] = "",
        kind: Annotated[str, Query(max_length=512, description="ai.model.kind")] = "",
        origin: Annotated[str, Query(max_length=512, description="ai.model.origin")] = "",
        sha256: Annotated[str, Query(max_length=512, description="file.hash.sha256")] = "",
        q: Annotated[str, Query(max_length=512, description="Part of the path or name")] = "",
        include_removed: bool = False,
    ) -> Response:
        """Model files: file.* and ai.model.* fields, host, first/last seen."""
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
        return respond(request, store.models_page(listing, where), filename="model-files")

    @router.get(
        "/models/by-digest", dependencies=viewer, response_model=DigestPage, responses=CSV_RESPONSE
    )
    def by_digest(
        request: Request,
        listing: Annotated[Listing, Depends(listing_params(DIGEST_SORTS, "name"))],
        model_format: Text = "",
        kind: Text = "",
        risk: Text = "",
        license: Text = "",
        q: Annotated[
            str, Query(max_length=512, description="Part of the name or digest start")
        ] = "",
    ) -> Response:
        """One row per SHA-256 with live files: what it is, on how many hosts, since when."""
        where = DigestFilter(format=model_format, kind=kind, risk=risk, license=license, q=q)
        return respond(request, store.digests_page(listing, where), filename="models")

    @router.get(
        "/models/by-digest/{sha256}",
        dependencies=viewer,
        response_model=DigestFiles,
        responses={**CSV_RESPONSE, **NOT_FOUND, 422: {"description": "Not a SHA-256"}},
    )
    def one_digest(
        request: Request,
        sha256: Annotated[str, Path(max_length=512)],
        listing: Annotated[Listing, Depends(listing_params(MODEL_SORTS, "agent_id"))],
    ) -> Response:
        """A digest (`digest`) and its live files, a page at a time (`items`, `next`)."""
        digest = _digest_or_404(store, sha256)
        page = store.models_page(listing, ModelFilter(sha256=str(digest["sha256"])))
        return respond(
            request, page, filename=f"model-{digest['sha256']}", extra={"digest": digest}
        )


def _digest_or_404(store: Store, sha256: str) -> dict[str, object]:
    try:
        digest = check_digest("sha256", sha256)
    except BadListing as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    found = store.digest(digest)
    if found is None:
        raise HTTPException(status_code=404, detail=f"no model with digest {digest}")
    return found


def _activity(router: APIRouter, store: Store, viewer: list[Any]) -> None:
    @router.get(
        "/processes", dependencies=viewer, response_model=ProcessPage, responses=CSV_RESPONSE
    )
    def processes(
        request: Request,
        listing: Annotated[Listing, Depends(listing_params(PROCESS_SORTS, "name"))],
        agent_id: Text = "",
        host: Annotated[str, Query(max_length=512, description="A host name, exactly")] = "",
        runtime: Annotated[str, Query(max_length=512, description="ai.runtime.name")] = "",
        q: Annotated[str, Query(max_length=512, description="Part of the process name")] = "",
        include_stopped: bool = False,
    ) -> Response:
        """Inference processes: process.*, ai.runtime.*, ai.listen.*, ai.gpu.* fields."""
        where = ProcessFilter(
            agent_id=agent_id, host=host, runtime=runtime, q=q, include_stopped=include_stopped
        )
        return respond(request, store.processes_page(listing, where), filename="processes")

    @router.get("/events", dependencies=viewer, response_model=EventPage, responses=CSV_RESPONSE)
    def events(
        request: Request,
        listing: Annotated[Listing, Depends(listing_params(EVENT_SORTS, "-id"))],
        dataset: Annotated[str, Query(max_length=512, description="event.dataset")] = "",
        agent_id: Text = "",
    ) -> Response:
        """Stored events, newest first by default: agent, seq, dataset, action, the event."""
        where = EventFilter(dataset=dataset, agent_id=agent_id)
        return respond(request, store.events_page(listing, where), filename="events")

    @router.get("/agents", dependencies=viewer, response_model=AgentPage, responses=CSV_RESPONSE)
    def agents(
        request: Request,
        listing: Annotated[Listing, Depends(listing_params(AGENT_SORTS, "enrolled_at"))],
        q: Annotated[str, Query(max_length=512, description="Part of the host name")] = "",
        group: Text = "",
        revoked: bool | None = None,
    ) -> Response:
        """Enrolled agents: chain state, public key as hex, and `delivery` (refusals by code,
        gaps, duplicates, snapshot requests)."""
        where = AgentFilter(q=q, group=group, revoked=revoked)
        return respond(request, store.agents_page(listing, where), filename="agents")

    @router.get("/search", dependencies=viewer, response_model=SearchPage, responses=CSV_RESPONSE)
    def search(
        request: Request,
        q: Annotated[str, Query(min_length=1, max_length=512, description="What to look for")],
        listing: Annotated[Listing, Depends(listing_params(("label",), "label"))],
        type: Annotated[
            str | None,
            Query(description=f"One of {', '.join(SEARCH_TYPES)} to page through that kind"),
        ] = None,
    ) -> Response:
        """Hosts by name, models by name, digests by prefix, files by path: each hit has its
        `type` and `link`. Without `type`, the first `limit` hits of each kind (`next` null)."""
        return respond(request, search_page(store, q, type, listing), filename="search")


def search_page(store: Store, q: str, kind: str | None, listing: Listing) -> Page:
    """Hits of one kind a page at a time, or of every kind when `kind` is None."""
    text = check_text("q", q.strip())
    if kind is not None and kind not in SEARCH_TYPES:
        raise HTTPException(status_code=422, detail=f"type must be one of {SEARCH_TYPES}")
    if kind is not None:
        page = store.search(text, kind, listing)
    else:
        first = Listing(limit=listing.limit, sort=listing.sort)
        pages = [store.search(text, each, first) for each in SEARCH_TYPES]
        page = Page(items=[i for p in pages for i in p.items], columns=pages[0].columns)
    for item in page.items:
        item["link"] = hit_link(item)
    return Page(items=page.items, next=page.next, columns=[*page.columns, "link"])
