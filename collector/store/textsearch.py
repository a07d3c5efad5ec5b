"""Substring search over model file paths and names, with a trigram index where there is one.

A `LIKE '%q%'` over a million paths read every row: 1.5 s on SQLite. Each backend has a
trigram index that answers it from the index instead: an FTS5 table with the trigram
tokenizer on SQLite (kept by triggers on models), pg_trgm's GIN operator class on
PostgreSQL. `ensure` creates them when the database allows (an old SQLite, or a role that
may not create the pg_trgm extension, keeps the plain scan).

A search first asks the index for at most CANDIDATES matching ids. Fewer than that: the
listing reads just those rows. More: the text is so common that reading the listing's own
index in order finds a page of matches within a few thousand rows, so it does that.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from sqlalchemy import ColumnElement, bindparam, literal_column, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.schema import SchemaItem

from collector.store import schema

CANDIDATES = 5000
IncludeKind = Literal[
    "schema",
    "table",
    "column",
    "index",
    "unique_constraint",
    "foreign_key_constraint",
    "check_constraint",
]
_models = schema.models
_log = logging.getLogger(__name__)
# What is indexed: the path (its first 512 characters) and the model name.
_SQLITE_TEXT = "new.path_key || ' ' || new.name"
_SQLITE = [
    "CREATE VIRTUAL TABLE model_text USING fts5(text, tokenize='trigram')",
    f"""CREATE TRIGGER model_text_insert AFTER INSERT ON models BEGIN
        INSERT INTO model_text(rowid, text) VALUES (new.id, {_SQLITE_TEXT}); END""",
    # Snapshots rewrite every row; only a real change of path or name touches the index.
    f"""CREATE TRIGGER model_text_update AFTER UPDATE OF path_key, name ON models
        WHEN old.path_key IS NOT new.path_key OR old.name IS NOT new.name BEGIN
        UPDATE model_text SET text = {_SQLITE_TEXT} WHERE rowid = new.id; END""",
    """CREATE TRIGGER model_text_delete AFTER DELETE ON models BEGIN
        DELETE FROM model_text WHERE rowid = old.id; END""",
    "INSERT INTO model_text(rowid, text) SELECT id, path_key || ' ' || name FROM models",
]


def outside_metadata(
    item: SchemaItem,
    name: str | None,
    kind: IncludeKind,
    reflected: bool,
    compare_to: SchemaItem | None,
) -> bool:
    """False for the search index's own tables and index, which schema.py does not hold
    (an Alembic `include_object`: autogenerate and the schema check leave them alone)."""
    if kind == "table" and name is not None and name.startswith("model_text"):
        return False
    return not (kind == "index" and name == "ix_models_text_trgm")


def searchable() -> ColumnElement[str]:
    """The text the index holds, spelt as the PostgreSQL index expression is."""
    return _models.c.path_key.op("||")(literal_column("' '")).op("||")(_models.c.name)


def ensure(conn: Connection) -> bool:
    """Create the trigram index if missing and possible; whether there is one."""
    if conn.dialect.name == "sqlite":
        return _ensure_sqlite(conn)
    return _ensure_postgresql(conn)


def drop(conn: Connection) -> None:
    """Remove the index (before a bulk load; `ensure` builds it again from the rows)."""
    if conn.dialect.name == "sqlite":
        for trigger in ("insert", "update", "delete"):
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS model_text_{trigger}")
        conn.exec_driver_sql("DROP TABLE IF EXISTS model_text")
    else:
        conn.exec_driver_sql("DROP INDEX IF EXISTS ix_models_text_trgm")


def _ensure_sqlite(conn: Connection) -> bool:
    found = conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'model_text'"
    ).first()
    if found is not None:
        return True
    try:
        with conn.begin_nested():
            for statement in _SQLITE:
                conn.exec_driver_sql(statement)
    except DBAPIError as exc:  # no FTS5 or no trigram tokenizer (SQLite before 3.34)
        _log.warning("no trigram index for model search, paths are scanned: %s", exc.orig)
        return False
    return True


def _ensure_postgresql(conn: Connection) -> bool:
    try:
        with conn.begin_nested():
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
            where = conn.exec_driver_sql(
                "SELECT extnamespace::regnamespace::text FROM pg_extension "
                "WHERE extname = 'pg_trgm'"
            ).scalar_one()
            conn.exec_driver_sql(
                "CREATE INDEX IF NOT EXISTS ix_models_text_trgm ON models USING gin "
                f"((path_key || ' ' || name) {where}.gin_trgm_ops) WHERE removed_at IS NULL"
            )
    except DBAPIError as exc:  # not allowed to create the extension, say
        _log.warning("no trigram index for model search, paths are scanned: %s", exc.orig)
        return False
    return True


def has_index(conn: Connection) -> bool:
    if conn.dialect.name == "sqlite":
        query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'model_text'"
    else:
        query = "SELECT 1 FROM pg_indexes WHERE indexname = 'ix_models_text_trgm'"
        query += " AND schemaname = current_schema()"
    return conn.exec_driver_sql(query).first() is not None


def candidates(conn: Connection, q: str, most: int = CANDIDATES) -> list[int] | None:
    """Ids of live model rows whose path or name may contain `q`, if the index can say and
    they are at most `most`; None when the listing should scan (no index, short or common
    text). Removed rows are left out: PostgreSQL's index holds live rows only."""
    runs = "".join(c if c not in "%_" else "\n" for c in q).split("\n")
    if max(map(len, runs)) < 3 or not has_index(conn):
        return None  # a trigram index needs three characters in a row to look up
    found = conn.execute(_lookup(conn.dialect.name), {"pattern": f"%{q}%", "limit": most + 1})
    rows = found.scalars().all()
    return None if len(rows) > most else [int(r) for r in rows]


def _lookup(dialect: str) -> Any:
    if dialect == "sqlite":
        # % and _ in q act as wildcards here, so this may find more; the listing's own
        # escaped LIKE keeps only true matches.
        return text("SELECT rowid FROM model_text WHERE text LIKE :pattern LIMIT :limit")
    return (
        select(_models.c.id)
        .where(_models.c.removed_at.is_(None), searchable().ilike(bindparam("pattern")))
        .limit(bindparam("limit"))
    )
