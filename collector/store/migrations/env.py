"""Alembic's environment: migrate the connection collector.store.migrate hands over.

There is no offline (SQL script) mode and no alembic.ini: `shadowai-collector db upgrade`
and scripts/migration.py build the configuration and pass the connection in.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext

from collector.store.schema import UTCDateTime, metadata
from collector.store.textsearch import outside_metadata


def _render_item(kind: str, item: Any, autogen: AutogenContext) -> str | Literal[False]:
    """Write our column types as plain SQLAlchemy ones, so revisions never import the app
    (whose schema module will have moved on by the time an old revision runs)."""
    if kind == "type" and isinstance(item, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


_config = context.config
_connection = _config.attributes.get("connection")
if _connection is None:
    raise RuntimeError(
        "run migrations with `shadowai-collector db upgrade` (or scripts/migration.py), "
        "not the alembic command"
    )
context.configure(
    connection=_connection,
    target_metadata=metadata,
    version_table_schema=_config.attributes.get("schema"),
    # SQLite alters a table by copying it; batch mode writes revisions that do so.
    render_as_batch=_connection.dialect.name == "sqlite",
    compare_type=True,
    render_item=_render_item,
    include_object=outside_metadata,  # the search index lives outside schema.py
)
with context.begin_transaction():
    context.run_migrations()
