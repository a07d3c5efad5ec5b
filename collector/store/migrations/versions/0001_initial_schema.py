"""The schema as metadata.create_all made it before migrations (collector 0.1.0).

A database created then has exactly these tables; collector.store.migrate checks that and
stamps it at this revision instead of running it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only autoincrements an INTEGER PRIMARY KEY, not a BIGINT one.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = sa.DateTime(timezone=True)


def _id() -> sa.Column[int]:
    return sa.Column("id", _ID, autoincrement=True, nullable=False)


def _text(name: str, *, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.Text(), nullable=nullable)


def _bytes(name: str, *, nullable: bool = False) -> sa.Column[bytes]:
    return sa.Column(name, sa.LargeBinary(), nullable=nullable)


def _int(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=False)


def _time(name: str, *, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, _TIME, nullable=nullable)


def upgrade() -> None:
    _tokens_and_agents()
    _chain()
    _alerts()
    _inventory()
    _delivery()
    _correlation()


def _tokens_and_agents() -> None:
    op.create_table(
        "enrollment_tokens",
        _id(),
        _text("token_id"),
        _bytes("secret_sha256"),
        _text("group_name"),
        _time("created_at"),
        _time("expires_at", nullable=True),
        _time("used_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_id"),
    )
    op.create_table(
        "api_tokens",
        _id(),
        _text("token_id"),
        _bytes("secret_sha256"),
        _text("role"),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_id"),
    )
    op.create_table(
        "agents",
        _id(),
        _text("agent_id"),
        _bytes("public_key"),
        _text("host_name"),
        _text("os_type"),
        _text("group_name"),
        _text("agent_version"),
        _time("enrolled_at"),
        _int("last_seq"),
        _bytes("last_digest"),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        _time("last_seen", nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("agent_id"),
    )


def _chain() -> None:
    op.create_table(
        "envelopes",
        _id(),
        _text("agent_id"),
        _int("seq"),
        _bytes("digest"),
        _bytes("envelope"),
        _time("received_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("agent_id", "seq", name="uq_envelopes_agent_seq"),
    )
    op.create_table(
        "events",
        _id(),
        _text("agent_id"),
        _int("seq"),
        _text("dataset"),
        _text("action"),
        _time("received_at"),
        _text("body"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("agent_id", "seq", name="uq_events_agent_seq"),
    )
    op.create_index("ix_events_dataset_id", "events", ["dataset", "id"])
    op.create_table(
        "gaps",
        _id(),
        _text("agent_id"),
        _int("from_seq"),
        _int("to_seq"),
        _time("at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_gaps_agent_id", "gaps", ["agent_id"])


def _alerts() -> None:
    op.create_table(
        "alerts",
        _id(),
        _bytes("dedup_sha256"),
        _text("dedup_key"),
        _text("rule_id"),
        _text("rule_title"),
        _text("level"),
        _text("status"),
        _text("agent_id"),
        _text("host_name"),
        _text("summary"),
        _int("event_seq"),
        _int("count"),
        _time("first_seen"),
        _time("last_seen"),
        _bytes("subject_sha256", nullable=True),
        _text("fingerprint", nullable=True),
        _text("status_by", nullable=True),
        _time("status_at", nullable=True),
        _text("status_reason", nullable=True),
        _time("suppressed_until", nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedup_sha256"),
    )
    op.create_index("ix_alerts_agent_id", "alerts", ["agent_id"])
    op.create_index("ix_alerts_status_last_seen", "alerts", ["status", "last_seen"])
    op.create_index("ix_alerts_agent_subject", "alerts", ["agent_id", "subject_sha256"])
    op.create_table(
        "alert_changes",
        _id(),
        sa.Column("alert_id", _ID, nullable=False),
        _text("status"),
        _text("changed_by"),
        _time("changed_at"),
        _text("reason"),
        _time("until", nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alert_changes_alert_id", "alert_changes", ["alert_id"])


def _inventory() -> None:
    op.create_table(
        "hosts",
        _id(),
        _text("agent_id"),
        _text("host_name"),
        _text("os_type"),
        _text("group_name"),
        _text("agent_version"),
        _time("last_seen", nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("agent_id"),
    )
    op.create_table(
        "models",
        _id(),
        _text("agent_id"),
        _bytes("path_sha256"),
        _text("path"),
        _text("fields"),
        _time("first_seen"),
        _time("last_seen"),
        _time("removed_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("agent_id", "path_sha256", name="uq_models_agent_path"),
    )
    op.create_table(
        "processes",
        _id(),
        _text("agent_id"),
        _bytes("key_sha256"),
        _int("pid"),
        _text("name"),
        _text("fields"),
        _time("first_seen"),
        _time("last_seen"),
        _time("stopped_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("agent_id", "key_sha256", name="uq_processes_agent_key"),
    )


def _delivery() -> None:
    op.create_table(
        "refusals",
        _id(),
        _text("agent_id"),
        _int("seq"),
        _text("code"),
        _text("reason"),
        _bytes("digest"),
        _bytes("envelope", nullable=True),
        _time("received_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_refusals_agent_seq", "refusals", ["agent_id", "seq"])
    op.create_index("ix_refusals_received_at", "refusals", ["received_at"])
    op.create_table(
        "collector_events",
        _id(),
        _text("agent_id"),
        _text("reason"),
        _time("at"),
        _text("body"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_collector_events_agent_id", "collector_events", ["agent_id", "id"])
    op.create_table(
        "delivery_counters",
        _id(),
        _text("agent_id"),
        _text("name"),
        _int("count"),
        _time("last_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("agent_id", "name", name="uq_delivery_counters_agent_name"),
    )
    op.create_table(
        "enrollment_token_uses",
        _id(),
        _text("token_id"),
        _int("max_uses"),
        _int("uses"),
        _time("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_id"),
    )
    op.create_table(
        "api_token_revocations",
        _id(),
        _text("token_id"),
        _time("revoked_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_id"),
    )


def _correlation() -> None:
    op.create_table(
        "correlation_window",
        _id(),
        _text("correlation_id"),
        _text("group_sha256"),
        _text("rule_id"),
        _text("value"),
        _text("agent_id"),
        _time("at"),
        _text("distinct_sha256", nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "correlation_id", "distinct_sha256", name="uq_correlation_window_distinct"
        ),
    )
    op.create_index(
        "ix_correlation_window_group_at",
        "correlation_window",
        ["correlation_id", "group_sha256", "at"],
    )


def downgrade() -> None:
    for table in (
        "correlation_window",
        "api_token_revocations",
        "enrollment_token_uses",
        "delivery_counters",
        "collector_events",
        "refusals",
        "processes",
        "models",
        "hosts",
        "alert_changes",
        "alerts",
        "gaps",
        "events",
        "envelopes",
        "agents",
        "api_tokens",
        "enrollment_tokens",
    ):
        op.drop_table(table)  # indexes go with their table
