"""The SQL of the alert lifecycle (decided in lifecycle.py): matches, removals, analysts'
status changes, each change recorded with who, when and why.

Alerts of one agent are written only inside that agent's ingest transaction, which the
agent row's compare-and-set serialises across replicas; reading the rows first is safe.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from collector.store import schema
from collector.store import writes as _writes  # its fast executemany; writes imports us
from collector.store.inventory import clean_text, dedup_sha256
from collector.store.lifecycle import SYSTEM, Current, Transition, on_end, on_match
from collector.store.records import NewAlert
from collector.store.triage_values import level_rank

_alerts, _changes = schema.alerts, schema.alert_changes
_CHUNK = 500


@dataclass(frozen=True)
class End:
    """A removal or stop: resolve this agent's alerts on `subject`."""

    agent_id: str
    subject: str
    reason: str
    at: datetime


def subject_sha256(subject: str) -> bytes:
    return dedup_sha256(subject)


def apply_matches(conn: Connection, alerts: Sequence[NewAlert]) -> None:
    """Open, count, reopen or leave alone, as each match in order says."""
    if not alerts:
        return
    keys = {dedup_sha256(a.dedup_key) for a in alerts}
    stored = _current(conn, list(keys))
    state: dict[bytes, Current | None] = {key: stored.get(key) for key in keys}
    pending: dict[bytes, dict[str, object]] = {}
    changes: list[tuple[bytes, Transition, datetime]] = []
    new: dict[bytes, dict[str, object]] = {}
    for alert in alerts:
        key = dedup_sha256(alert.dedup_key)
        existed = state[key] is not None
        transition = on_match(state[key], alert)
        if not existed:
            new[key] = _new_row(key, alert)
            state[key] = Current(0, "open", 1, alert.fingerprint, None)
        else:
            pending.setdefault(key, {}).update(_clean(transition.values))
            state[key] = _advance(state[key], transition)
        # A new alert's opening is on its own row (status_by/at/reason); history holds changes.
        if existed and transition.status is not None:
            changes.append((key, transition, alert.at))
    for key, values in pending.items():
        if key in new:
            new[key].update(values)
    if new:
        _writes.execute_many(conn, _writes.plain_insert("alerts"), list(new.values()))
    for key, values in pending.items():
        if key not in new:
            conn.execute(update(_alerts).where(_alerts.c.dedup_sha256 == key).values(values))
    ids = _ids(conn, [key for key, _, _ in changes])
    _record(
        conn, [(ids[key], t.status or "", SYSTEM, at, t.reason, None) for key, t, at in changes]
    )


def _clean(values: dict[str, object]) -> dict[str, object]:
    cleaned = {k: clean_text(v) if isinstance(v, str) else v for k, v in values.items()}
    if isinstance(cleaned.get("level"), str):
        cleaned["level_rank"] = level_rank(str(cleaned["level"]))
    return cleaned


def _advance(current: Current | None, transition: Transition) -> Current:
    assert current is not None
    values = transition.values
    return replace(
        current,
        status=str(values.get("status", current.status)),
        reason=str(values.get("status_reason", current.reason)),
        count=int(str(values.get("count", current.count))),
        fingerprint=str(values["fingerprint"]) if "fingerprint" in values else current.fingerprint,
    )


def _new_row(key: bytes, alert: NewAlert) -> dict[str, object]:
    return {
        "dedup_sha256": key,
        "dedup_key": clean_text(alert.dedup_key),
        "rule_id": clean_text(alert.rule_id),
        "rule_title": clean_text(alert.rule_title),
        "level": clean_text(alert.level),
        "level_rank": level_rank(alert.level),
        "status": "open",
        "agent_id": alert.agent_id,
        "host_name": clean_text(alert.host_name),
        "summary": clean_text(alert.summary),
        "event_seq": alert.event_seq,
        "count": 1,
        "first_seen": alert.at,
        "last_seen": alert.at,
        "subject_sha256": subject_sha256(alert.subject) if alert.subject else None,
        "fingerprint": alert.fingerprint or None,
        "status_by": SYSTEM,
        "status_at": alert.at,
        "status_reason": "rule matched",
        "suppressed_until": None,
    }


def apply_ends(conn: Connection, ends: Sequence[End]) -> None:
    """Resolve the open or acknowledged alerts on each removed model or stopped process."""
    for end in ends:
        rows = conn.execute(
            select(_alerts.c.id, _alerts.c.status, _alerts.c.count, _alerts.c.fingerprint)
            .where(_alerts.c.agent_id == end.agent_id)
            .where(_alerts.c.subject_sha256 == subject_sha256(end.subject))
            .where(_alerts.c.status.in_(("open", "acknowledged")))
        )
        for row in rows.all():
            transition = on_end(
                Current(row.id, row.status, row._mapping["count"], row.fingerprint, None),
                end.reason,
            )
            if transition is not None:
                set_status(conn, row.id, "resolved", SYSTEM, end.at, end.reason, None)


def set_status(
    conn: Connection,
    alert_id: int,
    status: str,
    by: str,
    at: datetime,
    reason: str,
    until: datetime | None,
) -> bool:
    """Set one alert's status and record the change; False if there is no such alert."""
    result = conn.execute(
        update(_alerts)
        .where(_alerts.c.id == alert_id)
        .values(
            status=status,
            status_by=clean_text(by, 255),
            status_at=at,
            status_reason=clean_text(reason, 2000),
            suppressed_until=until,
        )
    )
    if result.rowcount != 1:
        return False
    _record(conn, [(alert_id, status, by, at, reason, until)])
    return True


def history(conn: Connection, alert_id: int) -> list[dict[str, object]]:
    """Every status change, oldest first, starting with the opening (kept on the alert row)."""
    first = conn.execute(select(_alerts.c.first_seen).where(_alerts.c.id == alert_id)).first()
    if first is None:
        return []
    opened: dict[str, object] = {
        "status": "open",
        "by": SYSTEM,
        "at": first.first_seen.isoformat(),
        "reason": "rule matched",
        "until": None,
    }
    rows = conn.execute(
        select(_changes).where(_changes.c.alert_id == alert_id).order_by(_changes.c.id)
    )
    return [opened] + [
        {
            "status": r.status,
            "by": r.changed_by,
            "at": r.changed_at.isoformat(),
            "reason": r.reason,
            "until": None if r.until is None else r.until.isoformat(),
        }
        for r in rows
    ]


def _record(
    conn: Connection,
    changes: Iterable[tuple[int, str, str, datetime, str, datetime | None]],
) -> None:
    rows: list[dict[str, object]] = [
        {
            "alert_id": alert_id,
            "status": status,
            "changed_by": clean_text(by, 255),
            "changed_at": at,
            "reason": clean_text(reason, 2000),
            "until": until,
        }
        for alert_id, status, by, at, reason, until in changes
    ]
    if rows:
        _writes.execute_many(conn, _writes.plain_insert("alert_changes"), rows)


def _current(conn: Connection, keys: list[bytes]) -> dict[bytes, Current]:
    found: dict[bytes, Current] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        rows = conn.execute(
            select(
                _alerts.c.dedup_sha256,
                _alerts.c.id,
                _alerts.c.status,
                _alerts.c.count,
                _alerts.c.fingerprint,
                _alerts.c.suppressed_until,
                _alerts.c.status_reason,
            ).where(_alerts.c.dedup_sha256.in_(chunk))
        )
        for r in rows:
            found[bytes(r.dedup_sha256)] = Current(
                r.id,
                r.status,
                r._mapping["count"],
                r.fingerprint,
                r.suppressed_until,
                r.status_reason or "",
            )
    return found


def _ids(conn: Connection, keys: list[bytes]) -> dict[bytes, int]:
    found: dict[bytes, int] = {}
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), _CHUNK):
        chunk = unique[start : start + _CHUNK]
        rows = conn.execute(
            select(_alerts.c.dedup_sha256, _alerts.c.id).where(_alerts.c.dedup_sha256.in_(chunk))
        )
        found.update({bytes(r.dedup_sha256): int(r.id) for r in rows})
    return found
