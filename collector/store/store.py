"""The collector's store: the only place with SQL, over SQLite or a shared PostgreSQL.

Each public method is one transaction. Several collector replicas may share one
PostgreSQL database; the agent row's last_seq is the compare-and-set that keeps them
from interleaving one agent's chain.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from collector.errors import CollectorError
from collector.governance.correlations import Tally, WindowEntry
from collector.store import (
    admin,
    alerting,
    correlation,
    delivery,
    grants,
    migrate,
    queries,
    schema,
    textsearch,
    triage,
    upkeep,
    writes,
)
from collector.store.admin_store import AdminStore
from collector.store.engine import WRITE_OPTION, StoreUnavailable, create_store_engine, shown_url
from collector.store.inventory import clean_text
from collector.store.lifecycle import STATUSES
from collector.store.people_store import PeopleStore
from collector.store.records import AgentRecord, AgentState, Gap, NewAlert, StoredEvent
from collector.store.triage_store import TriageStore
from collector.store.triage_values import TriageError, status_change
from collector.store.views import InventoryViews

ALERT_STATUSES = STATUSES
log = logging.getLogger(__name__)


class ConcurrentUpdate(CollectorError):
    """Another replica advanced this agent's seq first (or revoked it); nothing was stored."""


class Store(TriageStore, AdminStore, PeopleStore, InventoryViews):
    @classmethod
    def open(cls, url: str, *, schema: str | None = None) -> Store:
        """Connect and upgrade the tables to the newest revision (collector.store.migrate),
        then make sure of the search index. StoreUnavailable when the database cannot be
        reached or written."""
        engine = None
        try:
            engine = create_store_engine(url, schema)
            before, after = migrate.upgrade(engine, schema)
            with engine.connect() as conn:
                conn.execution_options(**{WRITE_OPTION: True})
                with conn.begin():
                    textsearch.ensure(conn)  # not in metadata: an FTS5 table, a GIN opclass
        except OperationalError as exc:
            if engine is not None:
                engine.dispose()
            raise StoreUnavailable(shown_url(url), exc) from None
        except BaseException:
            if engine is not None:
                engine.dispose()
            raise
        if before != after:
            log.info("database schema upgraded from %s to %s", before or "empty", after)
        return cls(engine)

    def close(self) -> None:
        self._engine.dispose()

    # enrollment tokens

    def add_enrollment_token(
        self,
        *,
        token_id: str,
        secret_sha256: bytes,
        group: str,
        created_at: datetime,
        expires_at: datetime | None,
        max_uses: int = 1,
        actor: str | None = None,
    ) -> None:
        """Store a token that may enroll `max_uses` agents; with `actor`, audited."""
        with self._unique(f"enrollment token {token_id!r} exists"), self._write() as conn:
            admin.add_enrollment_token(
                conn,
                token_id=token_id,
                secret_sha256=secret_sha256,
                group=group,
                created_at=created_at,
                expires_at=expires_at,
                max_uses=max_uses,
                actor=actor,
            )

    def redeem_enrollment_token(
        self, *, token_id: str, secret_sha256: bytes, now: datetime
    ) -> str | None:
        """Count one use and return the token's group; None if unknown, spent, expired or wrong."""
        with self._write() as conn:
            return grants.redeem(conn, token_id=token_id, secret_sha256=secret_sha256, now=now)

    def enrollment_token_usable(
        self, *, token_id: str, secret_sha256: bytes, now: datetime
    ) -> bool:
        with self._read() as conn:
            return grants.usable(conn, token_id=token_id, secret_sha256=secret_sha256, now=now)

    def limit_enrollment_token(self, token_id: str, *, max_uses: int) -> None:
        """Let the token enroll up to `max_uses` agents (default: one)."""
        with self._unique(f"enrollment token {token_id!r} has limits"), self._write() as conn:
            grants.add_limits(conn, token_id, max_uses)

    def list_enrollment_tokens(self) -> list[dict[str, object]]:
        with self._read() as conn:
            return grants.list_enrollment(conn)

    def revoke_enrollment_token(
        self, token_id: str, *, now: datetime, actor: str | None = None
    ) -> bool:
        with self._write() as conn:
            return admin.revoke_enrollment_token(conn, token_id, now, actor)

    def list_api_tokens(self) -> list[dict[str, object]]:
        with self._read() as conn:
            return grants.list_api(conn)

    def revoke_api_token(self, token_id: str, *, now: datetime, actor: str | None = None) -> bool:
        with self._write() as conn:
            return admin.revoke_api_token(conn, token_id, now, actor)

    # agents

    def add_agent(self, record: AgentRecord) -> None:
        """Enroll an agent; its host appears in the inventory at once, not yet seen."""
        host = {
            "agent_id": record.agent_id,
            "host_name": clean_text(record.host_name, 255),
            "os_type": clean_text(record.os_type, 64),
            "group_name": clean_text(record.group, 255),
            "agent_version": clean_text(record.agent_version, 64),
        }
        agent = {
            **host,
            "public_key": record.public_key,
            "enrolled_at": record.enrolled_at,
            "last_seq": 0,
            "last_digest": b"",
        }
        with self._unique(f"agent {record.agent_id} is already enrolled"), self._write() as conn:
            conn.execute(insert(schema.agents).values(agent))
            conn.execute(insert(schema.hosts).values(host))

    def get_agent(self, agent_id: str) -> AgentState | None:
        agents = schema.agents
        with self._read() as conn:
            row = conn.execute(select(agents).where(agents.c.agent_id == agent_id)).first()
        return None if row is None else queries.agent_state(row)

    def list_agents(self) -> list[AgentState]:
        agents = schema.agents
        with self._read() as conn:
            rows = conn.execute(select(agents).order_by(agents.c.enrolled_at, agents.c.id))
            return [queries.agent_state(row) for row in rows]

    def revoke_agent(
        self, agent_id: str, *, actor: str | None = None, now: datetime | None = None
    ) -> bool:
        """Refuse this agent's envelopes from now on; False if there is no such agent."""
        with self._write() as conn:
            return admin.revoke_agent(conn, agent_id, now or datetime.now(UTC), actor)

    # ingest

    def ingest(
        self,
        *,
        agent_id: str,
        expected_last_seq: int,
        last_seq: int,
        last_digest: bytes,
        events: Sequence[StoredEvent],
        gaps: Sequence[Gap],
        alerts: Sequence[NewAlert],
        now: datetime,
        refusals: Sequence[delivery.Refusal] = (),
        notes: Sequence[delivery.CollectorEvent] = (),
        counts: Mapping[str, int] | None = None,
        window: correlation.Window | None = None,
    ) -> dict[tuple[str, str], Tally]:
        """Store one verified batch in one transaction, or nothing (ConcurrentUpdate).

        `refusals`, `notes` (shadowai.collector events) and `counts` (delivery counters) are
        what the batch taught about the agent; with `window`, its correlation matches are
        kept too and the tallies of the groups they touched returned. All share the
        transaction.
        """
        with self._unique(f"ingest for agent {agent_id}"), self._write() as conn:
            seen = now if events or last_seq != expected_last_seq else None
            self._advance(conn, agent_id, expected_last_seq, last_seq, last_digest, seen)
            writes.ingest(conn, agent_id, events, gaps, alerts, now)
            delivery.add(conn, refusals, notes, counts or {}, agent_id, now)
            if window is None or not window.entries:
                return {}
            return correlation.add_and_tally(
                conn, window.entries, window.seconds, now, window.counted
            )

    def record_notes(
        self,
        agent_id: str,
        notes: Sequence[delivery.CollectorEvent],
        alerts: Sequence[NewAlert],
        counts: Mapping[str, int],
        now: datetime,
    ) -> None:
        """Collector events outside any batch (silence, a revoked key sending)."""
        with self._write() as conn:
            writes.ingest(conn, agent_id, [], [], alerts, now)
            delivery.add(conn, [], notes, counts, agent_id, now)

    def held_digests(self, agent_id: str, seqs: Sequence[int]) -> dict[int, bytes]:
        with self._read() as conn:
            return delivery.held_digests(conn, agent_id, seqs)

    def fork_digests(self, agent_id: str, *, above_seq: int) -> set[bytes]:
        with self._read() as conn:
            return delivery.fork_digests(conn, agent_id, above_seq)

    def delivery_counters(self, agent_id: str | None = None) -> dict[str, dict[str, int]]:
        with self._read() as conn:
            return delivery.counters(conn, agent_id)

    def list_refusals(
        self, *, agent_id: str | None = None, limit: int = 100, before_id: int | None = None
    ) -> list[dict[str, object]]:
        with self._read() as conn:
            return delivery.list_refusals(conn, agent_id=agent_id, limit=limit, before_id=before_id)

    def list_collector_events(
        self, *, agent_id: str | None = None, limit: int = 100, before_id: int | None = None
    ) -> list[dict[str, object]]:
        with self._read() as conn:
            return delivery.list_collector_events(
                conn, agent_id=agent_id, limit=limit, before_id=before_id
            )

    def silent_agents(self, *, seen_before: datetime) -> list[tuple[str, datetime]]:
        with self._read() as conn:
            return delivery.silent_agents(conn, seen_before=seen_before)

    def _advance(
        self,
        conn: Connection,
        agent_id: str,
        expected_last_seq: int,
        last_seq: int,
        last_digest: bytes,
        seen: datetime | None,
    ) -> None:
        """Compare-and-set the chain; `seen` (None: only refusals came) moves last_seen, which
        the clone and silence checks read as "the genuine chain was alive then"."""
        agents = schema.agents
        values: dict[str, object] = {"last_seq": last_seq, "last_digest": last_digest}
        if seen is not None:
            values["last_seen"] = seen
        result = conn.execute(
            update(agents)
            .where(agents.c.agent_id == agent_id, agents.c.last_seq == expected_last_seq)
            .where(agents.c.revoked.is_(False))
            .values(**values)
        )
        if result.rowcount == 1:
            return
        row = conn.execute(
            select(agents.c.last_seq, agents.c.revoked).where(agents.c.agent_id == agent_id)
        ).first()
        if row is None:
            why = "is not enrolled"
        elif row.revoked:
            why = "was revoked"
        else:
            why = f"is at seq {row.last_seq}, not the expected {expected_last_seq}"
        raise ConcurrentUpdate(f"agent {agent_id} {why}; batch not stored")

    # queries

    def counts(self) -> dict[str, int]:
        """hosts, models (not removed) and open_alerts."""
        with self._read() as conn:
            return queries.counts(conn)

    def list_hosts(self) -> list[dict[str, object]]:
        with self._read() as conn:
            return queries.list_hosts(conn)

    def list_models(self, *, include_removed: bool = False) -> list[dict[str, object]]:
        with self._read() as conn:
            return queries.list_models(conn, include_removed=include_removed)

    def list_processes(self, *, include_stopped: bool = False) -> list[dict[str, object]]:
        with self._read() as conn:
            return queries.list_processes(conn, include_stopped=include_stopped)

    def list_alerts(
        self, *, status: str | None = None, limit: int | None = None
    ) -> list[dict[str, object]]:
        """Most recently seen first."""
        with self._read() as conn:
            return queries.list_alerts(conn, status=status, limit=limit)

    def list_events(
        self, *, limit: int = 100, dataset: str | None = None
    ) -> list[dict[str, object]]:
        """Newest first."""
        if limit < 0:
            raise ValueError(f"limit {limit} is negative")
        with self._read() as conn:
            return queries.list_events(conn, limit=limit, dataset=dataset)

    def list_gaps(self, *, agent_id: str | None = None) -> list[dict[str, object]]:
        """Sequence ranges agents skipped (from_seq..to_seq inclusive), oldest first."""
        with self._read() as conn:
            return queries.list_gaps(conn, agent_id=agent_id)

    def set_alert_status(
        self,
        alert_id: int,
        status: str,
        *,
        by: str = "api",
        until: datetime | None = None,
        reason: str = "",
        now: datetime | None = None,
    ) -> bool:
        """Change an alert's status and record who and when, in its history and the audit
        log; False if there is no such alert. ValueError (TriageError) for an unknown
        status, or suppressed without a future `until`."""
        at = now or datetime.now(UTC)
        try:
            change = status_change(status, until, reason, now=at)
        except TriageError as exc:
            raise ValueError(exc.reason) from None
        with self._write() as conn:
            return triage.change_status(conn, alert_id, change, by, at)

    def alert_history(self, alert_id: int) -> list[dict[str, object]]:
        """Every status change of the alert, oldest first: status, by, at, reason, until."""
        with self._read() as conn:
            return alerting.history(conn, alert_id)

    # governance

    def correlate(
        self,
        entries: Sequence[WindowEntry],
        *,
        seconds: dict[str, int],
        now: datetime,
        counted: frozenset[str] = frozenset(),
    ) -> dict[tuple[str, str], Tally]:
        """Keep base-rule matches in their correlation windows; tally each touched group.
        `counted`: the correlations that count every match (event_count)."""
        with self._write() as conn:
            return correlation.add_and_tally(conn, entries, seconds, now, counted)

    def raise_alerts(self, alerts: Sequence[NewAlert]) -> None:
        """Alerts from outside an agent's batch (correlations, the collector's own events)."""
        with self._write() as conn:
            alerting.apply_matches(conn, alerts)

    def add_collector_event(
        self, event: dict[str, object], *, alerts: Sequence[NewAlert], at: datetime
    ) -> None:
        """Store one shadowai.collector event from governance, and the alerts it raised."""
        with self._write() as conn:
            correlation.add_collector_event(conn, event, at)
            alerting.apply_matches(conn, alerts)

    # API tokens

    def add_api_token(
        self,
        *,
        token_id: str,
        secret_sha256: bytes,
        role: str,
        created_at: datetime,
        expires_at: datetime | None = None,
        actor: str | None = None,
    ) -> None:
        """Store a token for `role`, valid until `expires_at` (None: until revoked); with
        `actor`, audited."""
        with self._unique(f"API token {token_id!r} exists"), self._write() as conn:
            admin.add_api_token(
                conn,
                token_id=token_id,
                secret_sha256=secret_sha256,
                role=role,
                created_at=created_at,
                expires_at=expires_at,
                actor=actor,
            )

    def api_token_role(
        self, *, token_id: str, secret_sha256: bytes, now: datetime | None = None
    ) -> str | None:
        """The token's role, or None if unknown, wrong, revoked or expired at `now`."""
        at = now or datetime.now(UTC)
        with self._read() as conn:
            return grants.api_role(conn, token_id=token_id, secret_sha256=secret_sha256, now=at)

    # upkeep: retention, health and fleet figures

    def delete_expired(self, table: str, *, before: datetime, limit: int) -> int:
        """One batch of retention (collector.retention): rows of `table` (envelopes or
        events) received before `before`, at most `limit`; how many went."""
        with self._write() as conn:
            return upkeep.delete_expired(conn, table, before, limit)

    def ping(self) -> None:
        """A round trip to the database; raises (sqlalchemy.exc.DBAPIError) when it is away."""
        with self._read() as conn:
            upkeep.ping(conn)

    def agent_counts(self, *, online_since: datetime) -> tuple[int, int]:
        """(agents enrolled and not revoked, those of them seen since `online_since`)."""
        with self._read() as conn:
            return upkeep.agent_counts(conn, online_since)
