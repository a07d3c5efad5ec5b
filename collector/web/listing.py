"""The HTTP side of the listing contract: query parameters in, JSON or CSV out.

`listing_params` is a FastAPI dependency, so that every listing documents `limit`,
`cursor`, `sort` and `format` in the OpenAPI document the same way; `respond` answers
`{"items": [...], "next": C}` or the same rows as CSV (never more than one page in memory).
"""

# No `from __future__ import annotations`: FastAPI reads listing_params' parameter
# annotations at run time, and they close over its arguments.
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, create_model

from collector.paging import DEFAULT_LIMIT, MAX_LIMIT, Listing, Page, parse_listing
from collector.web.csvout import to_csv

CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A page of rows as JSON, or as CSV with `?format=csv` or "
        '`Accept: text/csv` (the next page\'s URL in a `Link: <...>; rel="next"` header)',
        "content": {"text/csv": {"schema": {"type": "string"}}},
    },
    400: {"description": "A bad limit, cursor, sort or filter value; `field` names it"},
}


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


def listing_params(sortable: Sequence[str], default_sort: str) -> Callable[..., Listing]:
    """A dependency that checks (and documents) a listing's paging and sort parameters."""
    names = ", ".join(sortable)

    def dependency(
        limit: Annotated[
            int | None,
            Query(description=f"Rows per page, 1 to {MAX_LIMIT}; {DEFAULT_LIMIT} if left out."),
        ] = None,
        cursor: Annotated[
            str | None, Query(description="The `next` of the previous page, as given.")
        ] = None,
        sort: Annotated[
            str | None,
            Query(
                description=f"One of {names}; a leading `-` sorts descending. "
                f"Default `{default_sort}`."
            ),
        ] = None,
        format: Annotated[
            Literal["json", "csv"] | None,
            Query(description="`csv` for the same rows as CSV (or send `Accept: text/csv`)."),
        ] = None,
    ) -> Listing:
        del format  # declared for the OpenAPI document; respond() reads it
        return parse_listing(
            limit=limit, cursor=cursor, sort=sort, sortable=sortable, default_sort=default_sort
        )

    return dependency


def wants_csv(request: Request) -> bool:
    """`?format=csv`, or an Accept header that prefers text/csv."""
    if request.query_params.get("format") == "csv":
        return True
    accept = request.headers.get("accept", "")
    return accept.split(",")[0].split(";")[0].strip().lower() == "text/csv"


def respond(
    request: Request,
    page: Page,
    *,
    filename: str = "export",
    extra: Mapping[str, object] | None = None,
) -> Response:
    """`{"items": [...], "next": cursor}` or the same rows as CSV (next page in a Link header).

    `extra` adds keys beside items and next in JSON (a digest's own fields, say); CSV has
    the rows only.
    """
    if not wants_csv(request):
        return JSONResponse({**(extra or {}), "items": page.items, "next": page.next})
    headers = {"Content-Disposition": f'attachment; filename="{filename}.csv"'}
    if page.next is not None:
        nxt = request.url.include_query_params(cursor=page.next)
        headers["Link"] = f'<{nxt}>; rel="next"'
    return Response(
        to_csv(page.items, page.columns), media_type="text/csv; charset=utf-8", headers=headers
    )


def page_model(name: str, columns: Sequence[str], **extra: Any) -> type[BaseModel]:
    """An OpenAPI schema for a page of rows with `columns` (more keys may appear)."""
    fields: dict[str, Any] = {
        _identifier(column): (Any, Field(None, alias=column)) for column in columns
    }
    item = create_model(
        f"{name}Item", __config__=ConfigDict(extra="allow", populate_by_name=True), **fields
    )
    return create_model(
        f"{name}Page",
        **extra,
        items=(list[item], ...),  # type: ignore[valid-type]  # a model built at run time
        next=(str | None, Field(None, description="The next page's cursor; null on the last.")),
    )


def _identifier(column: str) -> str:
    name = re.sub(r"\W", "_", column).strip("_") or "field"
    return f"f_{name}" if name[0].isdigit() else name
