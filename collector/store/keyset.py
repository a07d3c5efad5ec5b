"""Keyset pagination for SQLAlchemy selects: `WHERE key > :after ORDER BY key LIMIT n+1`.

An index on the key columns makes every page cost the same, however deep; OFFSET would
scan everything before it. Key columns must not be NULL (wrap them in `coalesce`) and the
last one must be unique (the row id) so that the order is total.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_

from collector.paging import BadListing, Listing


def keyset(
    query: Select[Any],
    columns: Sequence[ColumnElement[Any]],
    listing: Listing,
    *,
    after: Sequence[object] | None = None,
) -> Select[Any]:
    """`query` ordered by `columns` in the listing's direction, after its cursor, limit + 1.

    `after` overrides the cursor's values once the caller has converted them (ISO text back
    to datetimes, for one); its length must match `columns`.
    """
    values = list(after if after is not None else (listing.after or ()))
    if values and len(values) != len(columns):
        raise BadListing("cursor", f"holds {len(values)} values, the sort needs {len(columns)}")
    order = [c.desc() if listing.descending else c.asc() for c in columns]
    query = query.order_by(*order)
    if values:
        query = query.where(_after(columns, values, descending=listing.descending))
    return query.limit(listing.limit + 1)


def _after(
    columns: Sequence[ColumnElement[Any]], values: Sequence[object], *, descending: bool
) -> ColumnElement[bool]:
    # (a, b, c) > (x, y, z) spelt out, since row-value comparison is not portable to every
    # backend's planner: a > x OR (a = x AND (b > y OR (b = y AND c > z))).
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
