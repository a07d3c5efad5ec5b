"""Sigma correlation rules: parse (pySigma) and decide (pure) event_count, value_count and
temporal correlations over the matches kept in a time window.

The window itself lives in the store, so that a correlation holds across restarts and across
collector replicas sharing one database; this module only says what to keep and when a
window's tally fires.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationRule,
    SigmaCorrelationType,
)

from collector.governance.model import ACTIONS, Correlation, Event
from collector.governance.source import Where

KINDS = {
    SigmaCorrelationType.EVENT_COUNT: "event_count",
    SigmaCorrelationType.VALUE_COUNT: "value_count",
    SigmaCorrelationType.TEMPORAL: "temporal",
}
_OPS: dict[str, Callable[[float, float], bool]] = {
    "gte": operator.ge,
    "gt": operator.gt,
    "lte": operator.le,
    "lt": operator.lt,
    "eq": operator.eq,
    "neq": operator.ne,
}


def parse_correlation(
    data: dict[Any, Any], where: Where, problems: list[str]
) -> Correlation | None:
    before = len(problems)
    try:
        parsed = SigmaCorrelationRule.from_dict(data, collect_errors=True)
    except Exception as exc:  # pySigma raises built-in errors on some malformed input
        problems.append(where.at("correlation") + f"cannot be parsed ({type(exc).__name__}: {exc})")
        return None
    problems.extend(where.at("correlation") + str(error) for error in parsed.errors)
    if not isinstance(data.get("id"), str):
        problems.append(where.at("id") + "required: a UUID, which alerts are keyed on")
    if not isinstance(data.get("level"), str):
        problems.append(where.at("level") + "required: the severity of its alerts")
    action = data.get("action", "alert")
    if action not in ACTIONS:
        problems.append(where.at("action") + f"must be one of {', '.join(ACTIONS)}")
    kind = KINDS.get(parsed.type)
    if parsed.errors:
        return None
    if kind is None:
        problems.append(
            where.at("correlation.type") + f"{parsed.type.name.lower()} is not supported"
        )
    condition = parsed.condition
    if not isinstance(condition, SigmaCorrelationCondition):
        problems.append(where.at("correlation.condition") + "extended conditions are not supported")
        return None
    if len(parsed.aliases) > 0:
        problems.append(where.at("correlation.aliases") + "aliases are not supported")
    value_field = condition.fieldref if isinstance(condition.fieldref, str) else None
    if kind == "value_count" and value_field is None:
        problems.append(where.at("correlation.condition") + "value_count needs one field")
    if len(problems) > before or kind is None:
        return None
    return Correlation(
        id=str(data["id"]).strip().lower(),
        title=str(parsed.title),
        level=str(data["level"]),
        kind=kind,
        rule_ids=tuple(ref.reference.strip().lower() for ref in parsed.rules or ()),
        group_by=tuple(parsed.group_by or ()),
        seconds=parsed.timespan.seconds,
        op=condition.op.name.lower(),
        count=condition.count,
        value_field=value_field,
        source=f"{where.label}:{where.line}",
        action=str(action),
        status=str(data.get("status") or ""),
        tags=tuple(str(tag) for tag in parsed.tags),
    )


@dataclass(frozen=True)
class WindowEntry:
    """One base-rule match kept in a correlation's window."""

    correlation_id: str
    group_key: str  # the group-by values, joined; its sha256 keys the stored rows
    group_label: str
    rule_id: str
    value: str  # value_count's field value ("" for the other kinds)
    agent_id: str
    at: datetime


@dataclass(frozen=True)
class Tally:
    """A window's counts for one correlation and group, as the store reports them."""

    events: int
    values: int
    rules: int


def window_entry(
    correlation: Correlation, rule_id: str, event: Event, agent_id: str, at: datetime
) -> WindowEntry | None:
    """What to keep for a base-rule match; None if the event lacks a group-by or value field."""
    parts = []
    for name in correlation.group_by:
        found = event.get(name)
        if found is None or isinstance(found, (list, tuple, dict)):
            return None
        parts.append(f"{name}={found}")
    value = ""
    if correlation.value_field is not None:
        found = event.get(correlation.value_field)
        if found is None or isinstance(found, (list, tuple, dict)):
            return None
        value = str(found)
    label = ", ".join(parts) or "(all)"
    key = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return WindowEntry(correlation.id, key, label[:500], rule_id, value[:1000], agent_id, at)


def fires(correlation: Correlation, tally: Tally) -> bool:
    """Does the window's tally meet the correlation's condition."""
    if correlation.kind == "temporal":
        observed = tally.rules
    elif correlation.kind == "value_count":
        observed = tally.values
    else:
        observed = tally.events
    return _OPS[correlation.op](observed, correlation.count)


def in_memory_tallies(
    correlation: Correlation, entries: list[WindowEntry], now: datetime
) -> Mapping[str, Tally]:
    """Tallies of a window kept in memory (rule tests); the store computes the same in SQL."""
    since = now.timestamp() - correlation.seconds
    groups: dict[str, list[WindowEntry]] = {}
    for entry in entries:
        if entry.correlation_id == correlation.id and entry.at.timestamp() >= since:
            groups.setdefault(entry.group_key, []).append(entry)
    return {
        key: Tally(len(found), len({e.value for e in found}), len({e.rule_id for e in found}))
        for key, found in groups.items()
    }
