"""The Store's lists for the administration pages: agents and tokens, a page at a time."""

from __future__ import annotations

from collector.paging import Listing, Page
from collector.store import admin
from collector.store.base import StoreBase


class AdminStore(StoreBase):
    def page_agents(self, listing: Listing, *, group: str | None = None) -> Page:
        """Enrolled agents with their chain state and delivery counters."""
        with self._read() as conn:
            return admin.page_agents(conn, group, listing)

    def page_enrollment_tokens(self, listing: Listing) -> Page:
        with self._read() as conn:
            return admin.page_enrollment_tokens(conn, listing)

    def page_api_tokens(self, listing: Listing) -> Page:
        with self._read() as conn:
            return admin.page_api_tokens(conn, listing)
