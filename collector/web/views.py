"""Pure: the links a listing page shows (sortable headers, next and first page, search hits).

Each takes the page's path and query parameters as plain values and returns URLs, so that
templates stay free of URL building and these rules are tested without a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from collector.paging import Listing

Params = Mapping[str, str]
_PAGING = ("cursor", "sort", "format")  # what a new sort or a filter change starts over from


def url(path: str, params: Params) -> str:
    """`path` with the non-empty `params` as its query string."""
    kept = {k: v for k, v in params.items() if v != ""}
    return f"{path}?{urlencode(kept)}" if kept else path


@dataclass(frozen=True)
class Sorter:
    """Sortable column headers: a link per column, flipping the direction of the current one."""

    path: str
    params: Params
    listing: Listing

    def href(self, name: str) -> str:
        ascending = name != self.listing.sort or self.listing.descending
        kept = {k: v for k, v in self.params.items() if k not in _PAGING}
        return url(self.path, {**kept, "sort": name if ascending else f"-{name}"})

    def mark(self, name: str) -> str:
        """ "ascending", "descending" or "" (aria-sort values) for column `name`."""
        if name != self.listing.sort:
            return ""
        return "descending" if self.listing.descending else "ascending"


@dataclass(frozen=True)
class Pager:
    """Links to the next page (by cursor) and back to the first one."""

    path: str
    params: Params
    next_cursor: str | None

    @property
    def next(self) -> str | None:
        if self.next_cursor is None:
            return None
        return url(self.path, {**self.params, "cursor": self.next_cursor})

    @property
    def first(self) -> str | None:
        """The first page, when this is not it."""
        if not self.params.get("cursor"):
            return None
        return url(self.path, {k: v for k, v in self.params.items() if k != "cursor"})

    @property
    def csv(self) -> str:
        return url(self.path, {**self.params, "format": "csv"})


def hit_link(hit: Mapping[str, object]) -> str:
    """Where a search hit leads: a host's page, or a model digest's page."""
    agent_id, sha256 = hit.get("agent_id"), hit.get("sha256")
    if hit.get("type") == "host" and isinstance(agent_id, str):
        return host_link(agent_id)
    if isinstance(sha256, str) and sha256:
        return digest_link(sha256)
    if isinstance(agent_id, str):
        return host_link(agent_id)
    return "/search"


def host_link(agent_id: str) -> str:
    return "/hosts/" + quote(agent_id, safe="")


def digest_link(sha256: str) -> str:
    return "/models/" + quote(sha256, safe="")
