"""Triage in the store, on SQLite and PostgreSQL: the alert listing pages through every
alert once in each sort, filters, and each analyst change leaves its audit row."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select

from collector.paging import BadListing, CursorValue, Listing, decode_cursor
from collector.store import NewAlert, Store
from collector.store import schema as tables
from collector.store.audit import AuditFilter
from collector.store.triage import SORTS
from collector.store.triage_values import AlertFilter, BulkChange, StatusChange, level_rank

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
LEVELS = ["low", "high", "critical", "medium"]


def seed(store: Store, count: int = 40) -> None:
    """Alerts over 3 rules, 4 levels and 5 hosts; several share a last_seen (ties)."""
    store.raise_alerts(
        [
            NewAlert(
                rule_id=f"rule-{i % 3}",
                rule_title=f"Rule {i % 3}",
                level=LEVELS[i % 4],
                agent_id=f"agent-{i % 5}",
                host_name=f"laptop-{i % 5}",
                dedup_key=f"k{i}",
                event_seq=i,
                summary=f"/models/{i}.gguf",
                at=T0 + timedelta(minutes=i // 3),
            )
            for i in range(count)
        ]
    )


def walk(store: Store, where: AlertFilter, sort: str, limit: int) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        after = None if cursor is None else decode_cursor(cursor, sort=sort)
        name = sort.removeprefix("-")
        page = store.page_alerts(
            where, Listing(limit=limit, after=after, sort=name, descending=sort.startswith("-"))
        )
        assert len(page.items) <= limit
        seen += page.items
        cursor = page.next
        if cursor is None:
            return seen


def expected_key(item: dict[str, Any], sort: str) -> tuple[object, int]:
    value = {
        "last_seen": item["last_seen"],
        "first_seen": item["first_seen"],
        "level": level_rank(item["level"]),
        "rule": item["rule_id"],
        "host": item["host.name"],
        "count": item["count"],
    }[sort]
    return (value, item["id"])


@pytest.mark.parametrize("sort", list(SORTS))
def test_pages_walk_every_alert_once_in_each_sort(store: Store, sort: str) -> None:
    seed(store)
    for descending in (False, True):
        name = ("-" if descending else "") + sort
        seen = walk(store, AlertFilter(), name, limit=7)
        ids = [a["id"] for a in seen]
        assert len(ids) == len(set(ids)) == 40, name
        keys = [expected_key(a, sort) for a in seen]
        assert keys == sorted(keys, reverse=descending), name


def test_filters_pick_alerts_by_rule_level_status_host_and_assignee(store: Store) -> None:
    seed(store)
    everything = walk(store, AlertFilter(), "-last_seen", 100)
    first, second = everything[0]["id"], everything[1]["id"]
    store.set_alert_status(first, "acknowledged", by="user:alice", now=T0)
    store.assign_alert(first, "alice", by="user:alice", now=T0)
    store.assign_alert(second, "bob", by="user:alice", now=T0)

    def ids(**where: Any) -> set[int]:
        return {a["id"] for a in walk(store, AlertFilter(**where), "-last_seen", 6)}

    assert ids(rule="rule-1") == {a["id"] for a in everything if a["rule_id"] == "rule-1"}
    assert ids(level="critical") == {a["id"] for a in everything if a["level"] == "critical"}
    assert ids(status="acknowledged") == {first}
    assert ids(host="laptop-2") == ids(host="agent-2") != set()
    assert ids(assignee="alice") == {first}
    assert ids(unassigned=True) == {a["id"] for a in everything} - {first, second}
    assert ids(rule="rule-1", level="critical", host="nobody") == set()
    assert ids(rule="bad\x00value") == set()


def test_a_deep_cursor_costs_no_more_rows_than_a_page(store: Store) -> None:
    seed(store, 200)
    listing = Listing(limit=5, sort="last_seen", descending=True)
    page = store.page_alerts(AlertFilter(), listing)
    for _ in range(20):
        assert page.next is not None
        after = decode_cursor(page.next, sort="-last_seen")
        page = store.page_alerts(
            AlertFilter(), Listing(limit=5, after=after, sort="last_seen", descending=True)
        )
    assert len(page.items) == 5


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sort=st.sampled_from(list(SORTS)),
    key=st.lists(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
        max_size=3,
    ),
)
def test_a_forged_cursor_is_a_bad_listing_never_a_database_error(
    store: Store, sort: str, key: list[CursorValue]
) -> None:
    listing = Listing(limit=3, after=tuple(key), sort=sort)
    try:
        store.page_alerts(AlertFilter(), listing)
    except BadListing as exc:
        assert exc.field == "cursor"


def test_huge_and_edge_cursor_values_are_refused(store: Store) -> None:
    for after in [
        ("2026-11-01T08:00:00+00:00", 2**63),
        ("9999-12-31T23:59:59-05:00", 1),
        ("2026-11-01T08:00:00", 1),  # no time zone
        ("yesterday", 1),
    ]:
        with pytest.raises(BadListing):
            store.page_alerts(AlertFilter(), Listing(after=after, sort="last_seen"))


def audit_rows(store: Store, **where: str) -> list[dict[str, Any]]:
    listing = Listing(limit=1000, sort="id")
    return store.page_audit(AuditFilter(**where), listing).items


def test_each_change_writes_one_audit_row_with_before_and_after(store: Store) -> None:
    seed(store, 3)
    alert_id = walk(store, AlertFilter(), "last_seen", 10)[0]["id"]
    until = T0 + timedelta(days=30)
    assert store.set_alert_status(
        alert_id, "suppressed", by="user:alice", until=until, reason="fix due", now=T0
    )
    assert store.assign_alert(alert_id, "bob <b>", by="user:alice", now=T0)
    comment = store.comment_alert(alert_id, "looked at it\nline two", by="user:bob", now=T0)
    assert comment is not None and comment["text"] == "looked at it\nline two"
    rows = audit_rows(store, target=f"alert:{alert_id}")
    assert [(r["actor"], r["action"]) for r in rows] == [
        ("user:alice", "alert.status"),
        ("user:alice", "alert.assign"),
        ("user:bob", "alert.comment"),
    ]
    assert rows[0]["before"] == {"status": "open", "suppressed_until": None}
    assert rows[0]["after"] == {
        "status": "suppressed",
        "suppressed_until": until.isoformat(),
        "reason": "fix due",
    }
    assert (rows[1]["before"], rows[1]["after"]) == ({"assignee": None}, {"assignee": "bob <b>"})
    assert rows[2]["before"] is None and rows[2]["after"]["comment_id"] == comment["id"]
    assert rows[0]["at"] == T0.isoformat()
    alert = store.get_alert(alert_id)
    assert alert is not None and (alert["status"], alert["assignee"]) == ("suppressed", "bob <b>")


def test_changes_to_a_missing_alert_change_and_audit_nothing(store: Store) -> None:
    assert not store.set_alert_status(999, "resolved", by="user:alice")
    assert not store.assign_alert(999, "alice", by="user:alice")
    assert store.comment_alert(999, "hello", by="user:alice") is None
    assert store.alert_history_of(999) is None and store.get_alert(999) is None
    assert audit_rows(store) == []


def test_a_refused_change_leaves_no_audit_row(store: Store) -> None:
    seed(store, 1)
    with pytest.raises(ValueError):
        store.set_alert_status(1, "suppressed", by="user:alice")  # no until
    assert audit_rows(store) == []


def test_bulk_changes_each_alert_and_reports_the_missing(store: Store) -> None:
    seed(store, 5)
    ids = [a["id"] for a in walk(store, AlertFilter(), "last_seen", 10)][:3]
    change = BulkChange(status=StatusChange("acknowledged"), assign=True, assignee="carol")
    result = store.bulk_change_alerts([*ids, 12345], change, by="api-token:abc", now=T0)
    assert (result.changed, result.missing) == (ids, [12345])
    for alert_id in ids:
        alert = store.get_alert(alert_id)
        assert alert is not None and (alert["status"], alert["assignee"]) == (
            "acknowledged",
            "carol",
        )
    rows = audit_rows(store, actor="api-token:abc")
    assert sorted((r["target"], r["action"]) for r in rows) == sorted(
        (f"alert:{i}", a) for i in ids for a in ("alert.status", "alert.assign")
    )
    assert audit_rows(store, action="alert.assign", target=f"alert:{ids[0]}")[0]["after"] == {
        "assignee": "carol"
    }


def test_comments_page_oldest_first(store: Store) -> None:
    seed(store, 1)
    for i in range(5):
        store.comment_alert(1, f"note {i}", by="user:alice", now=T0 + timedelta(seconds=i))
    first = store.alert_comments(1, Listing(limit=3, sort="id"))
    assert [c["text"] for c in first.items] == ["note 0", "note 1", "note 2"]
    assert first.next is not None
    rest = store.alert_comments(
        1, Listing(limit=3, after=decode_cursor(first.next, sort="id"), sort="id")
    )
    assert [c["text"] for c in rest.items] == ["note 3", "note 4"] and rest.next is None


def test_rule_counts_are_per_rule_total_open_and_last_match(store: Store) -> None:
    seed(store, 9)
    store.set_alert_status(1, "resolved", by="user:alice")
    counts = store.rule_alert_counts()
    assert set(counts) == {"rule-0", "rule-1", "rule-2"}
    assert [counts[r]["alerts_total"] for r in sorted(counts)] == [3, 3, 3]
    rule_of_1 = store.get_alert(1)
    assert rule_of_1 is not None
    opened = {r: c["alerts_open"] for r, c in counts.items()}
    assert opened == {r: 2 if r == rule_of_1["rule_id"] else 3 for r in counts}
    assert counts["rule-2"]["last_match"] == (T0 + timedelta(minutes=2)).isoformat()


def test_level_rank_follows_the_level_when_a_match_changes_it(store: Store) -> None:
    seed(store, 1)
    store.raise_alerts(
        [
            NewAlert(
                "rule-0",
                "Rule 0",
                "critical",
                "agent-0",
                "laptop-0",
                "k0",
                9,
                "s",
                T0,
                fingerprint="new",
            )
        ]
    )
    with store._read() as conn:
        row = conn.execute(select(tables.alerts.c.level, tables.alerts.c.level_rank)).one()
    assert (row.level, row.level_rank) == ("critical", 4)


def test_audit_before_and_after_are_json_objects_in_the_table(store: Store) -> None:
    seed(store, 1)
    store.assign_alert(1, "alice", by="user:alice", now=T0)
    with store._read() as conn:
        row = conn.execute(select(tables.audit_log)).one()
    assert json.loads(row.before) == {"assignee": None} and json.loads(row.after) == {
        "assignee": "alice"
    }


def test_rule_counts_are_one_grouped_query_however_many_rules(store: Store) -> None:
    store.raise_alerts(
        [NewAlert(f"rule-{i}", "R", "low", "a", "h", f"k{i}", i, "s", T0) for i in range(120)]
    )
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(store._engine, "before_cursor_execute", count)
    try:
        counts = store.rule_alert_counts()
    finally:
        event.remove(store._engine, "before_cursor_execute", count)
    assert len(counts) == 120
    assert [s for s in statements if "alerts" in s] == [statements[-1]]
    assert "GROUP BY" in statements[-1]


def test_a_cursor_beyond_the_level_columns_range_is_refused(store: Store) -> None:
    with pytest.raises(BadListing):
        store.page_alerts(AlertFilter(), Listing(after=(2**31, 0), sort="level"))
