"""Pure: the rules listing, each loaded rule with what it raised, sorted and paged in memory.

A rule set holds hundreds of rules, not millions: sorting them here is cheaper than a query,
and the counts come from one grouped query over the alerts (Store.rule_alert_counts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from collector.governance.load import LEVELS
from collector.paging import BadListing, CursorValue, Listing, Page, encode_cursor

RULE_SORTS = ("title", "id", "level", "alerts_total", "alerts_open", "last_match")
DEFAULT_RULE_SORT = "title"
Key = tuple[str | int, str]


def with_counts(
    rules: Sequence[Mapping[str, object]], counts: Mapping[str, Mapping[str, object]]
) -> list[dict[str, object]]:
    """Each rule's summary with alerts_total, alerts_open and last_match (zero, None: none)."""
    none: dict[str, object] = {"alerts_total": 0, "alerts_open": 0, "last_match": None}
    return [{**rule, **counts.get(str(rule.get("id")), none)} for rule in rules]


def _key(row: Mapping[str, object], sort: str) -> Key:
    value = row.get(sort)
    rule_id = str(row.get("id", ""))
    if sort == "level":
        level = str(value)
        return (LEVELS.index(level) if level in LEVELS else -1, rule_id)
    if sort in ("alerts_total", "alerts_open"):
        return (value if isinstance(value, int) else 0, rule_id)
    return ("" if value is None else str(value), rule_id)


def page_rules(rows: Sequence[dict[str, object]], listing: Listing) -> Page:
    """The listing's page of `rows`, in its sort, after its cursor."""
    ordered = sorted(rows, key=lambda r: _key(r, listing.sort), reverse=listing.descending)
    if listing.after is not None:
        after = _cursor_key(listing.after, numeric=listing.sort in _NUMERIC)
        keys = [(_key(r, listing.sort), r) for r in ordered]
        if listing.descending:
            ordered = [r for k, r in keys if k < after]
        else:
            ordered = [r for k, r in keys if k > after]
    if len(ordered) <= listing.limit:
        return Page(items=ordered)
    items = ordered[: listing.limit]
    name = ("-" if listing.descending else "") + listing.sort
    return Page(items=items, next=encode_cursor(list(_key(items[-1], listing.sort)), sort=name))


_NUMERIC = frozenset({"level", "alerts_total", "alerts_open"})


def _cursor_key(values: tuple[CursorValue, ...], *, numeric: bool) -> Key:
    if len(values) == 2 and isinstance(values[1], str):
        first = values[0]
        if numeric and isinstance(first, int) and not isinstance(first, bool):
            return (first, values[1])
        if not numeric and isinstance(first, str):
            return (first, values[1])
    raise BadListing("cursor", "not a cursor this collector made")
