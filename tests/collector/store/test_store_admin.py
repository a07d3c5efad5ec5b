"""Administration in the store, on SQLite and PostgreSQL: tokens and agents listed a page at
a time, API tokens that expire, and each change by someone audited with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from collector.paging import Listing, decode_cursor
from collector.store import AgentRecord, Store
from collector.store.admin import AGENT_SORTS
from collector.store.audit import AuditFilter
from collector.store.delivery import Refusal

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SECRET = b"s" * 32


def audit(store: Store, **where: str) -> list[dict[str, Any]]:
    return store.page_audit(AuditFilter(**where), Listing(limit=1000, sort="id")).items


def test_token_changes_by_someone_are_audited_without_secrets(store: Store) -> None:
    later = NOW + timedelta(hours=24)
    store.add_enrollment_token(
        token_id="e1",
        secret_sha256=SECRET,
        group="lab",
        created_at=NOW,
        expires_at=later,
        max_uses=3,
        actor="user:alice",
    )
    store.add_api_token(
        token_id="a1", secret_sha256=SECRET, role="viewer", created_at=NOW, actor="cli:root"
    )
    assert store.revoke_enrollment_token("e1", now=NOW, actor="user:alice")
    assert store.revoke_api_token("a1", now=NOW, actor="user:alice")
    assert not store.revoke_api_token("nope", now=NOW, actor="user:alice")
    rows = audit(store)
    assert [(r["actor"], r["action"], r["target"]) for r in rows] == [
        ("user:alice", "enrollment_token.create", "enrollment-token:e1"),
        ("cli:root", "api_token.create", "api-token:a1"),
        ("user:alice", "enrollment_token.revoke", "enrollment-token:e1"),
        ("user:alice", "api_token.revoke", "api-token:a1"),
    ]
    assert rows[0]["before"] is None
    assert rows[0]["after"] == {"group": "lab", "max_uses": 3, "expires_at": later.isoformat()}
    assert rows[1]["after"] == {"role": "viewer", "expires_at": None}
    assert rows[2]["before"] == {"revoked": False} and rows[2]["after"] == {"revoked": True}
    assert all("sha256" not in str(r) and "sss" not in str(r) for r in rows)


def test_seeding_without_an_actor_is_not_audited(store: Store) -> None:
    store.add_enrollment_token(
        token_id="e1", secret_sha256=SECRET, group="g", created_at=NOW, expires_at=None
    )
    store.add_api_token(token_id="a1", secret_sha256=SECRET, role="admin", created_at=NOW)
    assert audit(store) == []


def test_a_multi_use_token_lists_its_uses_left(store: Store) -> None:
    store.add_enrollment_token(
        token_id="e1",
        secret_sha256=SECRET,
        group="g",
        created_at=NOW,
        expires_at=None,
        max_uses=3,
        actor="user:alice",
    )
    assert store.redeem_enrollment_token(token_id="e1", secret_sha256=SECRET, now=NOW) == "g"
    (token,) = store.page_enrollment_tokens(Listing(sort="created_at")).items
    assert (token["max_uses"], token["uses"], token["uses_left"]) == (3, 1, 2)


def test_an_api_token_stops_working_when_it_expires(store: Store) -> None:
    store.add_api_token(
        token_id="a1",
        secret_sha256=SECRET,
        role="analyst",
        created_at=NOW,
        expires_at=NOW + timedelta(hours=1),
    )
    assert store.api_token_role(token_id="a1", secret_sha256=SECRET, now=NOW) == "analyst"
    later = NOW + timedelta(hours=1)
    assert store.api_token_role(token_id="a1", secret_sha256=SECRET, now=later) is None
    (listed,) = store.list_api_tokens()
    assert listed["expires_at"] == later.isoformat() and listed["revoked"] is False


def test_agent_revocation_is_audited_with_what_it_was(store: Store) -> None:
    store.add_agent(AgentRecord("ag-1", b"\x01" * 32, "lap", "linux", "g", "1.0", NOW))
    assert store.revoke_agent("ag-1", actor="user:admin", now=NOW)
    assert store.revoke_agent("ag-1", actor="user:admin", now=NOW)
    assert not store.revoke_agent("ag-2", actor="user:admin", now=NOW)
    rows = audit(store, target="agent:ag-1")
    assert [(r["before"], r["after"]) for r in rows] == [
        ({"revoked": False}, {"revoked": True}),
        ({"revoked": True}, {"revoked": True}),
    ]


def seed_agents(store: Store, count: int) -> None:
    for i in range(count):
        agent_id = f"ag-{i:02d}"
        store.add_agent(
            AgentRecord(
                agent_id,
                bytes([i]) * 32,
                f"host-{i % 4}",
                "linux",
                f"g{i % 2}",
                "1.0",
                NOW + timedelta(minutes=i % 5),
            )
        )
    refusals = [Refusal("ag-03", 5, "fork", "no chain", b"d", b"env", NOW)]
    store.ingest(
        agent_id="ag-03",
        expected_last_seq=0,
        last_seq=2,
        last_digest=b"x",
        events=[],
        gaps=[],
        alerts=[],
        now=NOW,
        refusals=refusals,
        counts={"refused.fork": 1},
    )


@pytest.mark.parametrize("sort", list(AGENT_SORTS))
def test_agent_pages_visit_every_agent_once(store: Store, sort: str) -> None:
    seed_agents(store, 13)
    for descending in (False, True):
        name = ("-" if descending else "") + sort
        seen: list[dict[str, Any]] = []
        cursor = None
        while True:
            after = None if cursor is None else decode_cursor(cursor, sort=name)
            page = store.page_agents(
                Listing(limit=4, after=after, sort=sort, descending=descending)
            )
            seen += page.items
            cursor = page.next
            if cursor is None:
                break
        assert sorted(a["agent_id"] for a in seen) == [f"ag-{i:02d}" for i in range(13)]
    (agent,) = [a for a in seen if a["agent_id"] == "ag-03"]
    assert agent["delivery"] == {"refused.fork": 1} and agent["last_seq"] == 2


def test_agents_filter_by_group(store: Store) -> None:
    seed_agents(store, 6)
    page = store.page_agents(Listing(sort="host"), group="g1")
    assert sorted(a["agent_id"] for a in page.items) == ["ag-01", "ag-03", "ag-05"]


def test_token_lists_page_newest_first(store: Store) -> None:
    for i in range(5):
        store.add_api_token(
            token_id=f"a{i}",
            secret_sha256=SECRET,
            role="viewer",
            created_at=NOW + timedelta(minutes=i),
        )
    first = store.page_api_tokens(Listing(limit=3, sort="created_at", descending=True))
    assert [t["token_id"] for t in first.items] == ["a4", "a3", "a2"]
    assert first.next is not None
    after = decode_cursor(first.next, sort="-created_at")
    rest = store.page_api_tokens(Listing(limit=3, after=after, sort="created_at", descending=True))
    assert [t["token_id"] for t in rest.items] == ["a1", "a0"] and rest.next is None
