"""Links of a listing page: a header per sortable column, the next page, the first page.

Each keeps the page's filters and drops the cursor, which belongs to one sort only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import Request

from collector.paging import Listing, Page


@dataclass(frozen=True)
class SortLink:
    href: str
    current: str  # "ascending", "descending" (aria-sort values), or "" when not this column


def _href(request: Request, **changes: str | None) -> str:
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in changes]
    added = [(k, v) for k, v in changes.items() if v is not None]
    query = urlencode(kept + added)
    return request.url.path + ("?" + query if query else "")


def sort_links(request: Request, sortable: Sequence[str], listing: Listing) -> dict[str, SortLink]:
    """Per column: the link that sorts by it (the other way round if it is the sort now)."""
    links = {}
    for name in sortable:
        if name == listing.sort:
            flip = name if listing.descending else f"-{name}"
            state = "descending" if listing.descending else "ascending"
            links[name] = SortLink(_href(request, sort=flip, cursor=None), state)
        else:
            links[name] = SortLink(_href(request, sort=name, cursor=None), "")
    return links


def next_link(request: Request, page: Page) -> str | None:
    return None if page.next is None else _href(request, cursor=page.next)


def first_link(request: Request) -> str | None:
    """Back to the first page, when this is not it."""
    return _href(request, cursor=None) if request.query_params.get("cursor") else None


def query_string(request: Request) -> str:
    """The page's own query, for a form that comes back to it."""
    return urlencode(request.query_params.multi_items())
