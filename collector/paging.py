"""Pure: the listing contract of the API and the pages (limit, opaque cursor, sort).

A cursor is the sort key of the last row shown, as base64url JSON: opaque to clients,
stable under inserts, and checked on the way back in so a forged one is a 400, not a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from collector.errors import CollectorError

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_MAX_CURSOR = 4096  # characters; a key of a few values never needs more
CursorValue = str | int | float | bool | None


class BadListing(CollectorError):
    """A limit, cursor or sort a client sent that we cannot use; `field` names which."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Listing:
    """What one page asks for: how many rows, after which key, in which order."""

    limit: int = DEFAULT_LIMIT
    after: tuple[CursorValue, ...] | None = None
    sort: str = ""
    descending: bool = False


@dataclass(frozen=True)
class Page:
    """One page of rows and the cursor of the next one (None on the last page)."""

    items: list[dict[str, object]]
    next: str | None = None
    columns: list[str] = field(default_factory=list)  # CSV header order; empty: from items


def parse_listing(
    *,
    limit: int | None,
    cursor: str | None,
    sort: str | None,
    sortable: Sequence[str],
    default_sort: str,
) -> Listing:
    """Check a request's `limit`, `cursor` and `sort` (`name` or `-name` for descending)."""
    if limit is None:
        limit = DEFAULT_LIMIT
    if isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise BadListing("limit", f"must be 1..{MAX_LIMIT}, got {limit}")
    chosen = sort or default_sort
    descending = chosen.startswith("-")
    name = chosen.removeprefix("-")
    if name not in sortable:
        raise BadListing("sort", f"{name!r} is not one of {', '.join(sortable)}")
    after = None if not cursor else decode_cursor(cursor, sort=chosen)
    return Listing(limit=limit, after=after, sort=name, descending=descending)


def encode_cursor(key: Sequence[CursorValue], *, sort: str) -> str:
    """The opaque cursor after a row whose sort key is `key`, for the order `sort`."""
    raw = json.dumps({"s": sort, "k": list(key)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(text: str, *, sort: str) -> tuple[CursorValue, ...]:
    """The key inside a cursor made by `encode_cursor` for the same `sort`."""
    if len(text) > _MAX_CURSOR:
        raise BadListing("cursor", f"longer than {_MAX_CURSOR} characters")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise BadListing("cursor", f"not a cursor this collector made ({exc})") from None
    if not isinstance(decoded, dict) or not isinstance(decoded.get("k"), list):
        raise BadListing("cursor", "not a cursor this collector made")
    if decoded.get("s") != sort:
        raise BadListing("cursor", f"made for sort {decoded.get('s')!r}, not {sort!r}")
    key = decoded["k"]
    if not all(v is None or isinstance(v, str | int | float | bool) for v in key):
        raise BadListing("cursor", "holds a value that is not a scalar")
    if not all(_sendable(v) for v in key if isinstance(v, str)):
        raise BadListing("cursor", "holds text no database can take (NUL or a lone surrogate)")
    return tuple(key)


def _sendable(text: str) -> bool:
    # JSON's \u escapes can spell both; no stored value holds either.
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def page_of(rows: list[dict[str, object]], listing: Listing, key: Sequence[str]) -> Page:
    """Cut `rows` (fetched with limit + 1) to a page; `key` names the fields of the sort key."""
    if len(rows) <= listing.limit:
        return Page(items=rows)
    items = rows[: listing.limit]
    last = items[-1]
    values = [_cursor_value(last.get(name)) for name in key]
    sort = ("-" if listing.descending else "") + listing.sort
    return Page(items=items, next=encode_cursor(values, sort=sort))


def _cursor_value(value: object) -> CursorValue:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)  # datetimes and the like: their ISO text, parsed back by the store
