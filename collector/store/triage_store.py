"""The Store's triage and audit methods: the alert listing, analysts' changes, the audit log.

Each method is one transaction; each change writes its audit row inside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from collector.paging import Listing, Page
from collector.store import alerting, audit, triage
from collector.store.base import StoreBase
from collector.store.triage_values import AlertFilter, BulkChange


class TriageStore(StoreBase):
    def page_alerts(self, where: AlertFilter, listing: Listing) -> Page:
        """One page of the alerts `where` picks, in the listing's sort (triage_values)."""
        with self._read() as conn:
            return triage.page_alerts(conn, where, listing)

    def get_alert(self, alert_id: int) -> dict[str, object] | None:
        with self._read() as conn:
            return triage.get_alert(conn, alert_id)

    def assign_alert(
        self, alert_id: int, assignee: str | None, *, by: str, now: datetime | None = None
    ) -> bool:
        """Give the alert to `assignee` (None: nobody); False if there is no such alert."""
        with self._write() as conn:
            return triage.assign(conn, alert_id, assignee, by, now or datetime.now(UTC))

    def comment_alert(
        self, alert_id: int, text: str, *, by: str, now: datetime | None = None
    ) -> dict[str, object] | None:
        """The stored comment (id, alert_id, at, actor, text); None if there is no such alert."""
        with self._write() as conn:
            return triage.add_comment(conn, alert_id, text, by, now or datetime.now(UTC))

    def alert_comments(self, alert_id: int, listing: Listing) -> Page:
        with self._read() as conn:
            return triage.comments(conn, alert_id, listing)

    def bulk_change_alerts(
        self, ids: Sequence[int], change: BulkChange, *, by: str, now: datetime | None = None
    ) -> triage.BulkResult:
        """The same change to every alert of `ids` that exists, all in one transaction."""
        with self._write() as conn:
            return triage.bulk(conn, ids, change, by, now or datetime.now(UTC))

    def alert_history_of(self, alert_id: int) -> list[dict[str, object]] | None:
        """alert_history, or None if there is no such alert (not an empty history)."""
        with self._read() as conn:
            if triage.get_alert(conn, alert_id) is None:
                return None
            return alerting.history(conn, alert_id)

    def rule_alert_counts(self) -> dict[str, dict[str, object]]:
        """Per rule id: alerts_total, alerts_open, last_match."""
        with self._read() as conn:
            return triage.rule_counts(conn)

    def page_audit(self, where: audit.AuditFilter, listing: Listing) -> Page:
        with self._read() as conn:
            return audit.page(conn, where, listing)
