"""Bring the store's tables to the newest revision this code knows (Alembic), once.

The whole upgrade is one transaction: PostgreSQL and SQLite both roll DDL back, so a
failed upgrade leaves the previous revision. Replicas starting together on one PostgreSQL
queue on an advisory lock (SQLite's BEGIN IMMEDIATE already serializes writers); the
second finds the first one's work done.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect
from sqlalchemy.engine import Connection

from collector.errors import CollectorError
from collector.store.engine import WRITE_OPTION, lock_schema

MIGRATIONS = Path(__file__).with_name("migrations")
# The schema as it stood when tables still came from metadata.create_all.
FIRST = "0001"


class SchemaTooNew(CollectorError):
    """The database is at a revision this code does not know: a newer collector wrote it."""


class SchemaMismatch(CollectorError):
    """Tables from before migrations that are not the first revision's schema."""


def alembic_config(connection: Connection | None = None, schema: str | None = None) -> Config:
    """Alembic's configuration without an ini file; `connection` is the one to migrate."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    return config


@cache
def scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    found = scripts().get_current_head()
    if found is None:
        raise CollectorError(f"{MIGRATIONS}: no revisions")
    return found


def current(conn: Connection, schema: str | None) -> str | None:
    """The database's revision; None when it has no alembic_version table (or row)."""
    context = MigrationContext.configure(conn, opts={"version_table_schema": schema})
    return context.get_current_revision()


def upgrade(engine: Engine, schema: str | None) -> tuple[str | None, str]:
    """Upgrade to head; (revision before, revision after). A database at an unknown
    revision is refused; tables from before migrations are checked, then stamped FIRST."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            lock_schema(conn, schema)
            before = current(conn, schema)
            if before is None and _has_tables(conn, schema):
                _check_first_revision(conn, schema)
                command.stamp(alembic_config(conn, schema), FIRST)
                before = FIRST
            if before is not None and not known(before):
                raise SchemaTooNew(
                    f"the database is at schema revision {before}, newer than this "
                    f"collector knows (its newest is {head()}): run the collector version "
                    "that upgraded it, or a later one"
                )
            command.upgrade(alembic_config(conn, schema), "head")
            return before, head()


def known(revision: str) -> bool:
    return revision in {script.revision for script in scripts().walk_revisions()}


def _has_tables(conn: Connection, schema: str | None) -> bool:
    return bool(set(inspect(conn).get_table_names(schema=schema)) - {"alembic_version"})


def _check_first_revision(conn: Connection, schema: str | None) -> None:
    """Every table of the first revision with exactly its columns, else SchemaMismatch."""
    expected = _first_revision_columns()
    found = inspect(conn)
    names = set(found.get_table_names(schema=schema))
    problems = [f"table {t} is missing" for t in sorted(set(expected) - names)]
    for table in sorted(set(expected) & names):
        columns = {c["name"] for c in found.get_columns(table, schema=schema)}
        if columns != expected[table]:
            missing = ", ".join(sorted(expected[table] - columns)) or "none"
            extra = ", ".join(sorted(columns - expected[table])) or "none"
            problems.append(f"table {table}: columns missing: {missing}; unknown: {extra}")
    if problems:
        raise SchemaMismatch(
            "the database has tables but no schema revision, and they are not those of "
            f"revision {FIRST}: " + "; ".join(problems)
        )


@cache
def _first_revision_columns() -> dict[str, frozenset[str]]:
    """Tables and columns revision FIRST creates, read back from a scratch database."""
    scratch = create_engine("sqlite://")
    try:
        with scratch.begin() as conn:
            command.upgrade(alembic_config(conn), FIRST)
            found = inspect(conn)
            return {
                table: frozenset(c["name"] for c in found.get_columns(table))
                for table in found.get_table_names()
                if table != "alembic_version"
            }
    finally:
        scratch.dispose()
