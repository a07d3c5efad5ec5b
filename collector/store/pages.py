"""Keyset pages of store rows: a sort's key columns, its cursor checked, items built.

A cursor comes back from the client, so each of its values is checked against the kind of
its column before it reaches SQL: a forged one is a 400 (BadListing), never a driver error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Row, Select
from sqlalchemy.engine import Connection

from collector.paging import BadListing, CursorValue, Listing, Page, encode_cursor
from collector.store.keyset import keyset

Kind = Literal["int", "int32", "text", "time"]  # int: a BIGINT column; int32: an INTEGER one
_BIGINT = 2**63
_INT32 = 2**31


@dataclass(frozen=True)
class Sort:
    """The key columns of one sort (the last one unique) and the kind of each."""

    columns: tuple[ColumnElement[Any], ...]
    kinds: tuple[Kind, ...]

    def decode(self, values: Sequence[CursorValue]) -> list[object]:
        if len(values) != len(self.kinds):
            raise BadListing(
                "cursor", f"holds {len(values)} values, the sort needs {len(self.kinds)}"
            )
        return [_value(kind, value) for kind, value in zip(self.kinds, values, strict=True)]


def _value(kind: Kind, value: CursorValue) -> object:
    if kind in ("int", "int32"):
        bound = _BIGINT if kind == "int" else _INT32
        if isinstance(value, int) and not isinstance(value, bool) and -bound <= value < bound:
            return value
    elif kind == "text":
        if isinstance(value, str) and "\x00" not in value and _encodable(value):
            return value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is not None:
                return parsed.astimezone(UTC)
        except (ValueError, OverflowError):
            pass
    raise BadListing("cursor", "not a cursor this collector made")


def _encodable(text: str) -> bool:
    """Whether the driver can send `text` (a lone surrogate cannot be UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _cursor_value(value: object) -> CursorValue:
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def keyset_page(
    conn: Connection,
    query: Select[Any],
    sort: Sort,
    listing: Listing,
    item: Callable[[Row[Any]], dict[str, object]],
) -> Page:
    """One page of `query` in `sort`'s order after the listing's cursor, and the next cursor."""
    after = None if listing.after is None else sort.decode(listing.after)
    labels = [column.label(f"_key{i}") for i, column in enumerate(sort.columns)]
    rows = conn.execute(
        keyset(query.add_columns(*labels), sort.columns, listing, after=after)
    ).all()
    if len(rows) <= listing.limit:
        return Page(items=[item(row) for row in rows])
    rows = rows[: listing.limit]
    last = rows[-1]._mapping
    key = [_cursor_value(last[f"_key{i}"]) for i in range(len(sort.columns))]
    name = ("-" if listing.descending else "") + listing.sort
    return Page(items=[item(row) for row in rows], next=encode_cursor(key, sort=name))
