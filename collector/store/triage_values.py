"""Pure: what an analyst may ask of the alert list, and what a triage change may carry.

Every value here comes from a browser form or an API body; each check either returns the
clean value or raises TriageError naming the field, which the web layer turns into a 4xx.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from collector.errors import CollectorError
from collector.governance.load import LEVELS
from collector.store.lifecycle import STATUSES, check_change

MAX_ID = 2**63 - 1  # a BIGINT; PostgreSQL refuses anything past it with an error
MAX_BULK = 1000
MAX_ASSIGNEE = 255
MAX_COMMENT = 10_000
MAX_REASON = 2000
ALERT_SORTS = ("last_seen", "first_seen", "level", "rule", "host", "count")
DEFAULT_ALERT_SORT = "-last_seen"


class TriageError(CollectorError):
    """A triage value we refuse; `field` names which."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def level_rank(level: str) -> int:
    """informational 0 .. critical 4; a level no rule set gives sorts below them all."""
    return LEVELS.index(level) if level in LEVELS else -1


@dataclass(frozen=True)
class AlertFilter:
    """Which alerts a listing shows; None: any."""

    rule: str | None = None
    level: str | None = None
    status: str | None = None
    host: str | None = None  # an agent_id or a host name
    assignee: str | None = None
    unassigned: bool = False


def alert_filter(
    *,
    rule: str | None = None,
    level: str | None = None,
    status: str | None = None,
    host: str | None = None,
    assignee: str | None = None,
    unassigned: bool = False,
) -> AlertFilter:
    """The filter of a query string; empty values (an untouched form field) mean any."""
    if status and status not in STATUSES:
        raise TriageError("status", f"{status!r} is not one of {', '.join(STATUSES)}")
    if level and level not in LEVELS:
        raise TriageError("level", f"{level!r} is not one of {', '.join(LEVELS)}")
    return AlertFilter(
        rule=rule or None,
        level=level or None,
        status=status or None,
        host=host or None,
        assignee=assignee or None,
        unassigned=unassigned,
    )


def alert_id(value: object) -> int:
    """An alert id from a path or a form: an integer in 1..2^63-1."""
    if isinstance(value, bool):
        raise TriageError("alert_id", "not an integer")
    if isinstance(value, str):
        text = value.strip()
        if not text.isascii() or not text.isdigit() or len(text) > 19:
            raise TriageError("alert_id", f"{value[:40]!r} is not an alert id")
        value = int(text)
    if not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise TriageError("alert_id", f"must be 1..{MAX_ID}")
    return value


def alert_ids(values: Iterable[object]) -> list[int]:
    """Distinct alert ids of a bulk change, in the order given; 1..MAX_BULK of them."""
    ids = list(dict.fromkeys(alert_id(v) for v in values))
    if not ids:
        raise TriageError("ids", "choose at least one alert")
    if len(ids) > MAX_BULK:
        raise TriageError("ids", f"at most {MAX_BULK} alerts at once, got {len(ids)}")
    return ids


@dataclass(frozen=True)
class StatusChange:
    status: str
    until: datetime | None = None
    reason: str = ""


def status_change(
    status: str, until: datetime | None, reason: str, *, now: datetime
) -> StatusChange:
    """A status change the lifecycle accepts; `until` only for suppressed, in the future."""
    if until is not None:
        if until.tzinfo is None:
            raise TriageError("until", "needs a time zone (UTC: ...Z)")
        try:
            until = until.astimezone(UTC)
        except OverflowError:
            raise TriageError("until", "out of range") from None
    refused = check_change(status, until, now)
    if refused is not None:
        raise TriageError("until" if "until" in refused else "status", refused)
    return StatusChange(status, until, _text("reason", reason, MAX_REASON, empty=True))


@dataclass(frozen=True)
class BulkChange:
    """What a bulk action does to each alert: a status change, an assignment, or both."""

    status: StatusChange | None = None
    assign: bool = False  # False: leave the assignee as it is
    assignee: str | None = None  # None with assign: take the alert back

    def __post_init__(self) -> None:
        if self.status is None and not self.assign:
            raise TriageError("change", "give a status, an assignee, or both")


def assignee(value: str | None) -> str | None:
    """The user an alert is given to, None (or empty) to take it back."""
    if value is None or not value.strip():
        return None
    return _text("assignee", value.strip(), MAX_ASSIGNEE, empty=False)


def comment(text: str) -> str:
    return _text("text", text.strip(), MAX_COMMENT, empty=False)


def _text(field: str, value: str, limit: int, *, empty: bool) -> str:
    if not empty and not value:
        raise TriageError(field, "must not be empty")
    if len(value) > limit:
        raise TriageError(field, f"longer than {limit} characters")
    if any(ord(c) < 32 and c not in "\t\n\r" for c in value):
        raise TriageError(field, "holds a control character")
    if not _encodable(value):
        raise TriageError(field, "is not valid Unicode text (a lone surrogate)")
    return value


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
