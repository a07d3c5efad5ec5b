"""Open a database engine for the store: SQLite tuned for one writer, PostgreSQL for a fleet."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

from collector.errors import CollectorError

# Set on a connection's execution options to start its transaction as a writer.
WRITE_OPTION = "shadowai_write"
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_BUSY_TIMEOUT_MS = 15_000
_CONNECT_TIMEOUT_S = 10
# Connections kept open per process: the 8 gRPC threads, a few web requests and the
# background tasks at once. SQLAlchemy's default of 5 closed the overflow connection after
# each busy moment and opened another the next (a PostgreSQL backend forked each time:
# 1.3 new sessions a second under 20,000 simulated agents).
_POOL_SIZE = 12
_POOL_OVERFLOW = 12
# pg_advisory_xact_lock(class, key): the class keeps clear of other applications' locks.
_LOCK_CLASS = 0x5AD0


class StoreUnavailable(CollectorError):
    """The database cannot be reached or written; says where (without the password) and why."""

    def __init__(self, shown: str, exc: DBAPIError) -> None:
        lines = str(exc.orig).strip().splitlines()
        reason = lines[0] if lines else type(exc.orig).__name__
        super().__init__(f"cannot reach the database at {shown}: {reason}")
        self.shown = shown


def shown_url(url: str) -> str:
    """The URL as it may be printed: no password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(malformed URL)"


def create_store_engine(url: str, schema: str | None) -> Engine:
    """An engine for `url`; `schema` (PostgreSQL only) is created if missing and used."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise CollectorError(f"database URL: {exc}") from None
    shown = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if schema is not None:
            raise CollectorError(f"database {shown}: a schema is for PostgreSQL only")
        return _sqlite_engine(url, parsed.database)
    if backend == "postgresql":
        return _postgresql_engine(url, schema, shown)
    raise CollectorError(
        f"database {shown}: only sqlite:// and postgresql+psycopg:// are supported"
    )


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if database in (None, "", ":memory:"):
        # Each connection to :memory: is a new empty database, so keep exactly one and
        # let threads take turns with it through the pool.
        engine = create_engine(
            url,
            poolclass=QueuePool,
            pool_size=1,
            max_overflow=0,
            connect_args={"check_same_thread": False},
        )
    else:
        engine = create_engine(url)
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN, so that writers can ask for IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # The timeout first: switching a new file to WAL takes a lock another opener may hold.
    cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # A deferred transaction that reads then writes can fail with SQLITE_BUSY at once
    # (busy_timeout does not apply to lock upgrades); IMMEDIATE waits for the lock instead.
    immediate = conn.get_execution_options().get(WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _postgresql_engine(url: str, schema: str | None, shown: str) -> Engine:
    # A server that drops packets would otherwise hold a start or a request for minutes.
    connect_args: dict[str, object] = {}
    if "connect_timeout" not in make_url(url).query:
        connect_args["connect_timeout"] = _CONNECT_TIMEOUT_S
    pool = {"pool_size": _POOL_SIZE, "max_overflow": _POOL_OVERFLOW, "pool_pre_ping": True}
    if schema is None:
        engine = create_engine(url, connect_args=connect_args, **pool)
        event.listen(engine, "connect", _postgresql_connect)
        return engine
    if not _SCHEMA_NAME.fullmatch(schema):
        raise CollectorError(f"database {shown}: schema {schema!r} is not a plain lowercase name")
    connect_args["options"] = f"-csearch_path={schema}"
    engine = create_engine(url, connect_args=connect_args, **pool)
    event.listen(engine, "connect", _postgresql_connect)
    try:
        with engine.begin() as conn:
            # Two replicas creating one schema at once collide in the catalog; the
            # migration lock (collector.store.migrate) queues them.
            lock_schema(conn, schema)
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    except BaseException:
        engine.dispose()
        raise
    return engine


def _postgresql_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # No JIT: the store's statements are small, and PostgreSQL compiled one whose estimate
    # crossed jit_above_cost (a digest recount) for 330 ms to run it in 1 ms. Set here, not
    # in the URL's options, so that a URL's own options (a search_path) still apply.
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET jit = off")
    dbapi_connection.autocommit = autocommit


def lock_schema(conn: Connection, schema: str | None) -> None:
    """Hold the schema's creation-and-migration lock until the transaction ends (PostgreSQL;
    on SQLite, BEGIN IMMEDIATE already made the transaction the only writer)."""
    if conn.dialect.name != "postgresql":
        return
    key = "hashtext(coalesce(CAST(:s AS text), current_schema()))"
    conn.execute(text(f"SELECT pg_advisory_xact_lock(:c, {key})"), {"c": _LOCK_CLASS, "s": schema})
