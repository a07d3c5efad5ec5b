"""Keyset pagination for SQLAlchemy selects: `WHERE key > :after ORDER BY key LIMIT n+1`.

An index on the key columns makes every page cost the same, however deep; OFFSET would
scan everything before it. Key columns must not be NULL (wrap them in `coalesce`) and the
last one must be unique (the row id) so that the order is total.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, TypeDecorator, and_, or_
from sqlalchemy.engine import Connection

from collector.paging import BadListing, Listing, Page, page_of

_BIGINT = 2**63
_MAX_TEXT = 2048  # a cursor's text value; keys are clipped far below this


def keyset(
    query: Select[Any],
    columns: Sequence[ColumnElement[Any]],
    listing: Listing,
    *,
    after: Sequence[object] | None = None,
) -> Select[Any]:
    """`query` ordered by `columns` in the listing's direction, after its cursor, limit + 1.

    `after` overrides the cursor's values; without it they are checked against the columns'
    types (ISO text back to datetimes, integers within 64 bits), so that a forged cursor is a
    BadListing rather than a database error.
    """
    values = list(after) if after is not None else cursor_values(columns, listing.after or ())
    if values and len(values) != len(columns):
        raise BadListing("cursor", f"holds {len(values)} values, the sort needs {len(columns)}")
    order = [c.desc() if listing.descending else c.asc() for c in columns]
    query = query.order_by(*order)
    if values:
        query = query.where(_after(columns, values, descending=listing.descending))
    return query.limit(listing.limit + 1)


def cursor_values(columns: Sequence[ColumnElement[Any]], values: Sequence[object]) -> list[object]:
    """The cursor's values as the key columns' Python types, or BadListing."""
    if not values:
        return []
    if len(values) != len(columns):
        raise BadListing("cursor", f"holds {len(values)} values, the sort needs {len(columns)}")
    return [_as_type(_python_type(c), v) for c, v in zip(columns, values, strict=True)]


def fetch_page(
    conn: Connection,
    query: Select[Any],
    columns: Sequence[ColumnElement[Any]],
    listing: Listing,
    item: Callable[[Row[Any]], dict[str, object]],
    header: Sequence[str] = (),
) -> Page:
    """One page of `query` in the order of `columns`, each row turned into an item."""
    names = [f"_k{i}" for i in range(len(columns))]
    selected = query.add_columns(*[c.label(n) for c, n in zip(columns, names, strict=True)])
    rows = conn.execute(keyset(selected, columns, listing)).all()
    keys = [{name: row._mapping[name] for name in names} for row in rows]
    cut = page_of(keys, listing, key=names)  # the first `limit` rows, and the next cursor
    items = [item(row) for row in rows[: len(cut.items)]]
    return Page(items=items, next=cut.next, columns=list(header))


def _python_type(column: ColumnElement[Any]) -> type:
    sql_type = column.type
    if isinstance(sql_type, TypeDecorator):  # whose own python_type says only "object"
        sql_type = sql_type.impl_instance
    try:
        return sql_type.python_type
    except NotImplementedError:
        return object


def _as_type(kind: type, value: object) -> object:
    if kind is datetime:
        return _as_datetime(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise BadListing("cursor", "a value is not what the sort holds")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or not -_BIGINT <= value < _BIGINT:
            raise BadListing("cursor", "a value is not a 64-bit integer")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadListing("cursor", "a value is not a number")
        if not math.isfinite(value) or abs(value) >= 1e300:
            raise BadListing("cursor", "a value is not a finite number")
        return float(value)
    if kind is str:
        if not isinstance(value, str) or len(value) > _MAX_TEXT or "\x00" in value:
            raise BadListing("cursor", "a value is not text this listing holds")
        return value
    raise BadListing("cursor", "the sort cannot take a cursor value")


def _as_datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise BadListing("cursor", "a value is not a time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadListing("cursor", "a value is not a time") from None
    if parsed.tzinfo is None:
        raise BadListing("cursor", "a time has no zone")
    return parsed


def _after(
    columns: Sequence[ColumnElement[Any]], values: Sequence[object], *, descending: bool
) -> ColumnElement[bool]:
    # (a, b, c) > (x, y, z) spelt out, since row-value comparison is not portable to every
    # backend's planner: a > x OR (a = x AND (b > y OR (b = y AND c > z))). The leading
    # a >= x says the same again in a form a planner turns into an index seek; without it
    # SQLite scanned from the first row to the cursor, so deep pages cost more.
    column, value = columns[-1], values[-1]
    clause: ColumnElement[bool] = column < value if descending else column > value
    for column, value in zip(reversed(columns[:-1]), reversed(values[:-1]), strict=True):
        beyond = column < value if descending else column > value
        clause = or_(beyond, and_(column == value, clause))
    if len(columns) == 1:
        return clause
    # The OR alone is a filter to both planners, read row by row from the start of the
    # index; this redundant bound on the first column makes it where the range starts.
    first, start = columns[0], values[0]
    return and_(first <= start if descending else first >= start, clause)
