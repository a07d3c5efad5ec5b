"""Running many rows at the driver level: SQLAlchemy's executemany spends ~10 µs a row
building and converting parameters, more than SQLite spends storing the row.

Each statement is compiled once per dialect and set of keys; ingest (collector.store.writes)
and the digest summary (collector.store.digests) write through here. On PostgreSQL an
INSERT of many rows is one statement over arrays (INSERT ... SELECT FROM unnest), where a
row at a time costs the collector a round of parameter handling per row.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Dialect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import StatementError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert, UpdateBase

from collector.store import schema

Row = dict[str, object]

Convert = Callable[[Any], Any]


@dataclass(frozen=True)
class _Prepared:
    """A statement compiled for one dialect, and how rows become the driver's parameters."""

    sql: str
    names: tuple[str, ...]  # bind names, in the driver's order if positional
    positional: bool
    constants: Row  # converted values that the statement binds itself
    converters: tuple[tuple[int, Convert], ...]  # by index into names
    timestamps: tuple[tuple[int, Convert], ...]  # converted once per distinct value
    # PostgreSQL: the same INSERT taking one array per name, all rows in one execution
    columnar_sql: str | None = None

    def parameters(self, rows: Sequence[Row], *, columnar: bool = False) -> list[Any]:
        # A batch repeats a few timestamps many times, and converting one is slow.
        seen: list[dict[object, object]] = [{} for _ in self.timestamps]
        pick = itemgetter(*self.names)
        converted: list[Any] = []
        for row in rows:
            values = list(pick({**self.constants, **row} if self.constants else row))
            for i, convert in self.converters:
                values[i] = convert(values[i])
            for (i, convert), memo in zip(self.timestamps, seen, strict=True):
                value = values[i]
                try:
                    values[i] = memo[value]
                except KeyError:
                    values[i] = memo[value] = convert(value)
            if self.positional or columnar:
                converted.append(tuple(values))
            else:
                converted.append(dict(zip(self.names, values, strict=True)))
        return converted


@lru_cache(maxsize=64)
def _prepare(dialect: Dialect, statement: UpdateBase, keys: tuple[str, ...]) -> _Prepared:
    compiled = statement.compile(dialect=dialect, column_keys=list(keys), for_executemany=True)
    assert isinstance(compiled, SQLCompiler)
    ordered = compiled.positiontup if compiled.positional else compiled.bind_names.values()
    assert ordered is not None
    names = tuple(ordered)
    assert len(names) > 1  # so that itemgetter(*names) gives a tuple
    constants: Row = {}
    converters: list[tuple[int, Convert]] = []
    timestamps: list[tuple[int, Convert]] = []
    for bind, name in compiled.bind_names.items():
        convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if not bind.required:
            value = bind.effective_value
            constants[name] = value if convert is None else convert(value)
            continue
        if convert is None:
            continue
        places = timestamps if isinstance(bind.type, schema.UTCDateTime) else converters
        places.extend((i, convert) for i, n in enumerate(names) if n == name)
    prepared = _Prepared(
        compiled.string,
        names,
        compiled.positional,
        constants,
        tuple(converters),
        tuple(timestamps),
    )
    if dialect.name == "postgresql" and isinstance(statement, Insert) and not constants:
        sql = _unnest_sql(compiled.string, statement, names, dialect)
        if sql is not None:
            return dataclasses.replace(prepared, columnar_sql=sql)
    return prepared


# A bind as the psycopg dialect writes it, with the cast it may add: %(name)s::VARCHAR
_PLACEHOLDER = r"%\((?P<name>\w+)\)s(?:::[A-Z ]+)?"
_ITEM = _PLACEHOLDER.replace("?P<name>", "")
_VALUES = re.compile(rf"\) VALUES \((?P<items>(?:{_ITEM}(?:, )?)+)\)")


def _unnest_sql(sql: str, statement: Insert, names: Sequence[str], dialect: Dialect) -> str | None:
    """INSERT ... VALUES (%(a)s, ...) as INSERT ... SELECT * FROM unnest(%(a)b::T[], ...).

    None when the VALUES list is anything but one plain placeholder per column, each name
    once: that statement keeps its row-at-a-time form.
    """
    found = _VALUES.search(sql)
    if found is None:
        return None
    items = found["items"].split(", ")
    matched = [re.fullmatch(_PLACEHOLDER, item) for item in items]
    binds = [m["name"] for m in matched if m is not None]
    if len(binds) != len(items) or sorted(binds) != sorted(names) or len(set(binds)) != len(binds):
        return None
    types = [statement.table.c[name].type.compile(dialect) for name in binds]
    # Binary arrays: psycopg escapes every element of a text array in Python, ~7x slower.
    arrays = ", ".join(f"%({n})b::{t}[]" for n, t in zip(binds, types, strict=True))
    columns = ", ".join(f"_u{i}" for i in range(len(binds)))
    select = f") SELECT * FROM unnest({arrays}) AS _u({columns})"
    return sql[: found.start()] + select + sql[found.end() :]


def execute_many(conn: Connection, statement: UpdateBase, rows: Sequence[Row]) -> None:
    """conn.execute(statement, rows), with the rows' parameters converted here."""
    if not rows:
        return
    prepared = _prepare(conn.dialect, statement, tuple(rows[0]))
    # One row goes as plain VALUES: building the arrays costs more than it saves.
    columnar = prepared.columnar_sql is not None and len(rows) > 1
    try:
        parameters = prepared.parameters(rows, columnar=columnar)
    except Exception as exc:  # a value its type refuses, wrapped as conn.execute would
        raise StatementError(str(exc), prepared.sql, None, exc) from exc
    if columnar:
        assert prepared.columnar_sql is not None
        columns = dict(zip(prepared.names, map(list, zip(*parameters, strict=True)), strict=True))
        conn.exec_driver_sql(prepared.columnar_sql, columns)
    else:
        conn.exec_driver_sql(prepared.sql, parameters)
