"""Index envelopes and events by arrival, so that retention finds expired rows at once.

On a large PostgreSQL table the build holds ingest for a while (CREATE INDEX CONCURRENTLY
cannot run inside the upgrade's transaction): upgrade in a quiet hour.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_envelopes_received_at", "envelopes", ["received_at"])
    op.create_index("ix_events_received_at", "events", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_events_received_at", table_name="events")
    op.drop_index("ix_envelopes_received_at", table_name="envelopes")
