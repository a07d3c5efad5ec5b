"""The store's tables (SQLAlchemy Core), portable across SQLite and PostgreSQL.

Columns that come from agents and need a unique index are keyed by a sha256 of the
value: PostgreSQL refuses btree entries over ~2.7 kB and a file path may be longer.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out; SQLite keeps no offset, so we add it back on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()}: the store keeps UTC only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQLite only autoincrements an INTEGER PRIMARY KEY, not a BIGINT one.
Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()


def _id() -> Column[int]:
    return Column("id", Id, primary_key=True, autoincrement=True)


enrollment_tokens = Table(
    "enrollment_tokens",
    metadata,
    _id(),
    Column("token_id", Text, nullable=False, unique=True),
    Column("secret_sha256", LargeBinary, nullable=False),
    Column("group_name", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime),
    Column("used_at", UTCDateTime),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    _id(),
    Column("token_id", Text, nullable=False, unique=True),
    Column("secret_sha256", LargeBinary, nullable=False),
    Column("role", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime),  # NULL: until revoked
)

agents = Table(
    "agents",
    metadata,
    _id(),
    Column("agent_id", Text, nullable=False, unique=True),
    Column("public_key", LargeBinary, nullable=False),
    Column("host_name", Text, nullable=False),
    Column("os_type", Text, nullable=False),
    Column("group_name", Text, nullable=False),
    Column("agent_version", Text, nullable=False),
    Column("enrolled_at", UTCDateTime, nullable=False),
    Column("last_seq", BigInteger, nullable=False, default=0),
    Column("last_digest", LargeBinary, nullable=False, default=b""),
    Column("revoked", Boolean, nullable=False, default=False),
    Column("last_seen", UTCDateTime),
)

# The signed bytes as received, kept apart from the decoded events so that listing
# events never drags the blobs along and retention can treat them differently.
envelopes = Table(
    "envelopes",
    metadata,
    _id(),
    Column("agent_id", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("digest", LargeBinary, nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    UniqueConstraint("agent_id", "seq", name="uq_envelopes_agent_seq"),
    Index("ix_envelopes_received_at", "received_at"),  # retention deletes by age
)

events = Table(
    "events",
    metadata,
    _id(),
    Column("agent_id", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("dataset", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("body", Text, nullable=False),  # the flat event as JSON text
    UniqueConstraint("agent_id", "seq", name="uq_events_agent_seq"),
    Index("ix_events_dataset_id", "dataset", "id"),
    Index("ix_events_received_at", "received_at"),
    Index("ix_events_agent_id_id", "agent_id", "id"),  # one host's events, newest first
)

gaps = Table(
    "gaps",
    metadata,
    _id(),
    Column("agent_id", Text, nullable=False, index=True),
    Column("from_seq", BigInteger, nullable=False),
    Column("to_seq", BigInteger, nullable=False),
    Column("at", UTCDateTime, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    _id(),
    Column("dedup_sha256", LargeBinary, nullable=False, unique=True),
    Column("dedup_key", Text, nullable=False),
    Column("rule_id", Text, nullable=False),
    Column("rule_title", Text, nullable=False),
    Column("level", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("agent_id", Text, nullable=False, index=True),
    Column("host_name", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("event_seq", BigInteger, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    # The lifecycle (collector/store/alerting.py): what the alert is about, the observation
    # last counted, and the latest status change with who made it, when and why.
    Column("subject_sha256", LargeBinary),
    Column("fingerprint", Text),
    Column("status_by", Text),
    Column("status_at", UTCDateTime),
    Column("status_reason", Text),
    Column("suppressed_until", UTCDateTime),
    # Triage (collector/store/triage.py): who works on it, and the level as a number so
    # that "most severe first" is an index walk (collector.store.triage_values.level_rank).
    Column("assignee", Text),
    Column("level_rank", Integer, nullable=False, default=0),
    Index("ix_alerts_status_last_seen", "status", "last_seen"),
    Index("ix_alerts_agent_subject", "agent_id", "subject_sha256"),
    # One index per sort of the triage listing, each ending in the id that makes the key
    # unique: a page is an index range, however deep (docs/performance.md, issue 11).
    Index("ix_alerts_last_seen_id", "last_seen", "id"),
    Index("ix_alerts_first_seen_id", "first_seen", "id"),
    Index("ix_alerts_level_rank_id", "level_rank", "id"),
    Index("ix_alerts_rule_id_id", "rule_id", "id"),
    Index("ix_alerts_host_name_id", "host_name", "id"),
    Index("ix_alerts_count_id", "count", "id"),
    # The triage queue, open alerts most severe first: SQLite's planner (without STAT4)
    # would otherwise sort every open alert; PostgreSQL walks level_rank's index.
    Index("ix_alerts_status_level_rank_id", "status", "level_rank", "id"),
    # The rules page's grouped counts read this index alone, never the table.
    Index("ix_alerts_rule_status_last_seen", "rule_id", "status", "last_seen"),
    # Open alerts per host, counted from the index alone (the hosts listing).
    Index("ix_alerts_status_agent", "status", "agent_id"),
)
# Most alerts have no assignee: indexing only those that do keeps the index small and tells
# SQLite's planner that one assignee is a few rows (a full index made it walk last_seen).
Index(
    "ix_alerts_assignee_id",
    alerts.c.assignee,
    alerts.c.id,
    sqlite_where=alerts.c.assignee.is_not(None),
    postgresql_where=alerts.c.assignee.is_not(None),
)

hosts = Table(
    "hosts",
    metadata,
    _id(),
    Column("agent_id", Text, nullable=False, unique=True),
    Column("host_name", Text, nullable=False),
    Column("os_type", Text, nullable=False),
    Column("group_name", Text, nullable=False),
    Column("agent_version", Text, nullable=False),
    Column("last_seen", UTCDateTime),
    # Live model files, kept by ingest so that /hosts never counts a million rows.
    Column("model_count", BigInteger, nullable=False, default=0, server_default="0"),
    Index("ix_hosts_host_name", "host_name", "id"),
)


def _text(name: str) -> Column[str]:
    """A label column copied out of the JSON fields: '' when absent, so keys never hold NULL."""
    return Column(name, Text, nullable=False, default="", server_default="")


def _number(name: str) -> Column[int]:
    """A count copied out of the JSON fields: -1 when absent or not an integer."""
    return Column(name, BigInteger, nullable=False, default=-1, server_default="-1")


def _live(name: str, *columns: str) -> Index:
    """An index over rows not removed, the ones every listing shows by default."""
    live = text("removed_at IS NULL")
    return Index(name, *columns, sqlite_where=live, postgresql_where=live)


# Model files: the full field set stays JSON in `fields`; the columns after it are copies
# (collector.store.inventory.model_columns) that listings filter, group and sort on.
models = Table(
    "models",
    metadata,
    _id(),
    Column("agent_id", Text, nullable=False),
    Column("path_sha256", LargeBinary, nullable=False),
    Column("path", Text, nullable=False),
    Column("fields", Text, nullable=False),  # file.* and ai.model.* as JSON text
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("removed_at", UTCDateTime),
    # The path cut to 512 characters: a btree key PostgreSQL accepts, with id to break ties.
    _text("path_key"),
    _text("sha256"),  # file.hash.sha256, lowercase hex, '' unless 64 hex digits
    _text("name"),
    _text("format"),
    _text("kind"),
    _text("risk"),
    _text("origin"),
    _text("license"),
    _text("quantization"),
    _text("architecture"),
    _number("size"),
    _number("parameters"),
    UniqueConstraint("agent_id", "path_sha256", name="uq_models_agent_path"),
    _live("ix_models_live_agent", "agent_id", "path_key", "id"),
    _live("ix_models_live_path", "path_key", "id"),
    _live("ix_models_live_name", "name", "id"),
    _live("ix_models_live_format", "format", "path_key", "id"),
    _live("ix_models_live_risk", "risk", "path_key", "id"),
    _live("ix_models_live_kind", "kind", "path_key", "id"),
    _live("ix_models_live_size", "size", "id"),
    _live("ix_models_live_parameters", "parameters", "id"),
    _live("ix_models_live_first_seen", "first_seen", "id"),
    # No index on last_seen: every snapshot moves it, and an indexed column that changes
    # costs PostgreSQL a new entry in every index of the row (no HOT update).
    _live("ix_models_live_sha256", "sha256", "agent_id"),
    # Room on each page, so that a snapshot's update of fields and last_seen (no index holds
    # them) stays on the page and PostgreSQL touches no index (a HOT update).
    postgresql_with={"fillfactor": 70},
)

# One row per content digest, kept by ingest (collector.store.digests): what /models lists.
# Counts are of live files; first_seen is the earliest file ever seen with the digest.
model_digests = Table(
    "model_digests",
    metadata,
    _id(),
    Column("sha256", Text, nullable=False, unique=True),
    _text("name"),
    _text("format"),
    _text("kind"),
    _text("risk"),
    _text("license"),
    _text("quantization"),
    _text("architecture"),
    _number("size"),
    _number("parameters"),
    Column("host_count", BigInteger, nullable=False, default=0, server_default="0"),
    Column("file_count", BigInteger, nullable=False, default=0, server_default="0"),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Index("ix_model_digests_name", "name", "sha256"),
    Index("ix_model_digests_host_count", "host_count", "sha256"),
    Index("ix_model_digests_first_seen", "first_seen", "sha256"),
    # The listing filtered by kind, in its default order (by name).
    Index("ix_model_digests_kind_name", "kind", "name", "sha256"),
    # Everything the overview's charts read (collector.store.overview), so that they scan
    # this index alone, in (kind, format) groups, rather than every row of the table.
    Index("ix_model_digests_figures", "kind", "format", "size", "file_count"),
)

processes = Table(
    "processes",
    metadata,
    _id(),
    Column("agent_id", Text, nullable=False),
    Column("key_sha256", LargeBinary, nullable=False),  # of (process.pid, process.name)
    Column("pid", BigInteger, nullable=False),
    Column("name", Text, nullable=False),
    Column("fields", Text, nullable=False),  # process.*, user.*, ai.* as JSON text
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("stopped_at", UTCDateTime),
    # Copies out of `fields` for sorting and filtering (collector.store.inventory).
    _text("runtime"),
    _number("gpu_memory"),
    Column("gpu_utilization", Float, nullable=False, default=-1.0, server_default="-1"),
    UniqueConstraint("agent_id", "key_sha256", name="uq_processes_agent_key"),
    Index("ix_processes_agent_id", "agent_id", "stopped_at"),
    postgresql_with={"fillfactor": 70},
)

# -- delivery: refusals, collector events, per-agent counters, token limits --------------

# Refused envelopes kept for the analyst, bounded per agent and by age (collector.store.delivery).
refusals = Table(
    "refusals",
    metadata,
    _id(),
    Column("agent_id", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("code", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("digest", LargeBinary, nullable=False),
    Column("envelope", LargeBinary),  # NULL when over the size kept
    Column("received_at", UTCDateTime, nullable=False),
    Index("ix_refusals_agent_seq", "agent_id", "seq"),
    Index("ix_refusals_received_at", "received_at"),
)

# What the collector itself saw (event.dataset shadowai.collector): delivery refusals, forks,
# silence, and governance's failed reloads and expired exceptions (agent_id "" for those).
collector_events = Table(
    "collector_events",
    metadata,
    _id(),
    Column("agent_id", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("body", Text, nullable=False),  # the flat event as JSON text
    Index("ix_collector_events_agent_id", "agent_id", "id"),
)

# Per agent: refused.<code>, gaps, duplicates, late, snapshot_requests, silence.
delivery_counters = Table(
    "delivery_counters",
    metadata,
    _id(),
    Column("agent_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("last_at", UTCDateTime, nullable=False),
    UniqueConstraint("agent_id", "name", name="uq_delivery_counters_agent_name"),
)

# Use counts and revocation of enrollment tokens; a token without a row here is single-use.
enrollment_token_uses = Table(
    "enrollment_token_uses",
    metadata,
    _id(),
    Column("token_id", Text, nullable=False, unique=True),
    Column("max_uses", BigInteger, nullable=False),
    Column("uses", BigInteger, nullable=False),
    Column("revoked_at", UTCDateTime),
)

api_token_revocations = Table(
    "api_token_revocations",
    metadata,
    _id(),
    Column("token_id", Text, nullable=False, unique=True),
    Column("revoked_at", UTCDateTime, nullable=False),
)

# Governance (collector/store/alerting.py, correlation.py).

# Every status change of every alert: who, when, why (and until when, for suppressed).
alert_changes = Table(
    "alert_changes",
    metadata,
    _id(),
    Column("alert_id", Id, nullable=False, index=True),
    Column("status", Text, nullable=False),
    Column("changed_by", Text, nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
    Column("reason", Text, nullable=False),
    Column("until", UTCDateTime),
)

# The matches correlation rules count, kept in the database so that a window outlives a
# restart and is shared by every replica.
correlation_window = Table(
    "correlation_window",
    metadata,
    _id(),
    Column("correlation_id", Text, nullable=False),
    Column("group_sha256", Text, nullable=False),
    Column("rule_id", Text, nullable=False),
    Column("value", Text, nullable=False),
    Column("agent_id", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    # value_count and temporal need each (group, rule, value) once, at its latest time:
    # keyed here so that repeated snapshots update one row; event_count rows leave it NULL.
    Column("distinct_sha256", Text),
    Index("ix_correlation_window_group_at", "correlation_id", "group_sha256", "at"),
    # The prune of one correlation's expired rows, whatever their group: without it each
    # prune read every row of the correlation (573 ms at 640,000 rows on PostgreSQL).
    Index("ix_correlation_window_at", "correlation_id", "at"),
    UniqueConstraint("correlation_id", "distinct_sha256", name="uq_correlation_window_distinct"),
)

# -- access: dashboard users, their sessions, login throttling, API token expiry, audit ----

users = Table(
    "users",
    metadata,
    _id(),
    Column("username", Text, nullable=False, unique=True),
    Column("role", Text, nullable=False),
    Column("password_hash", Text, nullable=False),  # argon2id, PHC string
    Column("created_at", UTCDateTime, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("last_login", UTCDateTime),
)

# A session is found by the sha256 of its cookie's token: the token itself is never stored,
# so a copy of the database opens no session.
sessions = Table(
    "sessions",
    metadata,
    _id(),
    Column("token_sha256", LargeBinary, nullable=False, unique=True),
    Column("user_id", Id, nullable=False, index=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),  # the absolute limit
    Column("csrf_token", Text, nullable=False),
)

# Failed logins per key ("user:NAME", "addr:NETWORK"), kept here so that replicas share them.
login_failures = Table(
    "login_failures",
    metadata,
    _id(),
    Column("key", Text, nullable=False, unique=True),
    Column("failures", BigInteger, nullable=False),
    Column("last_failure_at", UTCDateTime, nullable=False),
)

# Analysts' notes on an alert, oldest first on its page.
alert_comments = Table(
    "alert_comments",
    metadata,
    _id(),
    Column("alert_id", Id, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", Text, nullable=False),
    Column("text", Text, nullable=False),
    Index("ix_alert_comments_alert_id", "alert_id", "id"),
)

# Every change a person or a token made (collector/store/audit.py): written in the change's
# own transaction, so a change without its row (or a row without its change) cannot exist.
audit_log = Table(
    "audit_log",
    metadata,
    _id(),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", Text, nullable=False),  # "user:alice", "api-token:<id>", "cli:root"
    Column("action", Text, nullable=False),  # "alert.status", "api_token.create", ...
    Column("target", Text, nullable=False),  # "alert:42", "agent:<id>", ...
    Column("before", Text),  # JSON of the changed fields as they were; NULL for a creation
    Column("after", Text),  # JSON of the changed fields as they are now
    Index("ix_audit_log_actor_id", "actor", "id"),
    Index("ix_audit_log_action_id", "action", "id"),
    Index("ix_audit_log_target_id", "target", "id"),
)
