"""The HTTP side of the listing contract: query parameters in, JSON or CSV out."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from collector.paging import Listing, Page, parse_listing
from collector.web.csvout import to_csv


def listing_from(request: Request, *, sortable: Sequence[str], default_sort: str) -> Listing:
    """The `limit`, `cursor` and `sort` query parameters of `request`, checked."""
    params = request.query_params
    raw_limit = params.get("limit")
    limit: int | None = None
    if raw_limit is not None:
        try:
            limit = int(raw_limit)
        except ValueError:
            limit = -1  # parse_listing names the bad value's field
    return parse_listing(
        limit=limit,
        cursor=params.get("cursor"),
        sort=params.get("sort"),
        sortable=sortable,
        default_sort=default_sort,
    )


def wants_csv(request: Request) -> bool:
    """`?format=csv`, or an Accept header that prefers text/csv."""
    if request.query_params.get("format") == "csv":
        return True
    accept = request.headers.get("accept", "")
    return accept.split(",")[0].split(";")[0].strip().lower() == "text/csv"


def respond(request: Request, page: Page, *, filename: str = "export") -> Response:
    """`{"items": [...], "next": cursor}` or the same rows as CSV (next page in a Link header)."""
    if not wants_csv(request):
        return JSONResponse({"items": page.items, "next": page.next})
    headers = {"Content-Disposition": f'attachment; filename="{filename}.csv"'}
    if page.next is not None:
        nxt = request.url.include_query_params(cursor=page.next)
        headers["Link"] = f'<{nxt}>; rel="next"'
    return Response(
        to_csv(page.items, page.columns), media_type="text/csv; charset=utf-8", headers=headers
    )
