"""The Store's read side for the dashboard and the API: a page per call, each one transaction.

A base class of Store, kept apart so that the inventory's reads are in one place; every
method takes a checked Listing (collector.paging) and a checked filter (.filters).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from collector.paging import Listing, Page
from collector.store import activity, backfill, digests, hosts, listings, overview
from collector.store.base import StoreBase
from collector.store.filters import (
    AgentFilter,
    DigestFilter,
    EventFilter,
    HostFilter,
    ModelFilter,
    ProcessFilter,
)

Item = dict[str, object]
# Unfiltered: frozen dataclasses, so one instance each serves as the default.
_HOSTS, _MODELS, _DIGESTS = HostFilter(), ModelFilter(), DigestFilter()
_PROCESSES, _EVENTS, _AGENTS = ProcessFilter(), EventFilter(), AgentFilter()


class InventoryViews(StoreBase):
    """Listings, single rows, the overview's figures and search."""

    def hosts_page(self, listing: Listing, where: HostFilter = _HOSTS) -> Page:
        with self._read() as conn:
            return hosts.hosts_page(conn, listing, where)

    def host(self, agent_id: str) -> Item | None:
        """A host with its enrollment, counts and latest agent health; None if unknown."""
        with self._read() as conn:
            return hosts.host(conn, agent_id)

    def host_alerts(self, agent_id: str, *, limit: int = 20) -> list[Item]:
        """The host's open alerts, most recently seen first."""
        with self._read() as conn:
            return hosts.open_alerts_of(conn, agent_id, limit)

    def models_page(self, listing: Listing, where: ModelFilter = _MODELS) -> Page:
        with self._read() as conn:
            return listings.models_page(conn, listing, where)

    def digests_page(self, listing: Listing, where: DigestFilter = _DIGESTS) -> Page:
        with self._read() as conn:
            return listings.digests_page(conn, listing, where)

    def digest(self, sha256: str) -> Item | None:
        with self._read() as conn:
            return listings.digest(conn, sha256)

    def processes_page(self, listing: Listing, where: ProcessFilter = _PROCESSES) -> Page:
        with self._read() as conn:
            return listings.processes_page(conn, listing, where)

    def events_page(self, listing: Listing, where: EventFilter = _EVENTS) -> Page:
        with self._read() as conn:
            return activity.events_page(conn, listing, where)

    def agents_page(self, listing: Listing, where: AgentFilter = _AGENTS) -> Page:
        with self._read() as conn:
            return activity.agents_page(conn, listing, where)

    def overview(self, now: datetime) -> dict[str, Any]:
        with self._read() as conn:
            return overview.overview(conn, now)

    def search(self, q: str, kind: str, listing: Listing) -> Page:
        """One page of hits of `kind` (collector.store.filters.SEARCH_TYPES) for `q`."""
        with self._read() as conn:
            return overview.search(conn, q, kind, listing)

    def rebuild_digests(self) -> None:
        """Recount every digest and host from the model rows (after a bulk load)."""
        with self._write() as conn:
            digests.rebuild(conn)

    def fill_inventory(self) -> None:
        """Column copies, digests, host counts and the search index for rows written before
        the store kept them (collector.store.backfill); a migration runs it once."""
        with self._write() as conn:
            backfill.fill_inventory(conn)
