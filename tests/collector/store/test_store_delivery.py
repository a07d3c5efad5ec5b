"""Delivery in the store: token use counts and revocation, refusals kept bounded, counters,
collector events, silence, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from collector.store import AgentRecord, Store, StoredEvent
from collector.store import delivery as delivery_sql
from collector.store.delivery import CollectorEvent, Refusal

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SECRET = hashlib.sha256(b"secret").digest()


def add_token(store: Store, token_id: str = "tok1") -> None:
    store.add_enrollment_token(
        token_id=token_id, secret_sha256=SECRET, group="g", created_at=NOW, expires_at=None
    )


def redeem(store: Store, token_id: str = "tok1") -> str | None:
    return store.redeem_enrollment_token(token_id=token_id, secret_sha256=SECRET, now=NOW)


def add_agent(store: Store, agent_id: str = "a1") -> None:
    store.add_agent(AgentRecord(agent_id, b"\x01" * 32, "lap", "linux", "g", "t", NOW))


def test_a_token_with_uses_enrolls_that_many_agents(store: Store) -> None:
    add_token(store)
    store.limit_enrollment_token("tok1", max_uses=3)
    assert [redeem(store) for _ in range(4)] == ["g", "g", "g", None]
    (listed,) = store.list_enrollment_tokens()
    assert (listed["uses"], listed["max_uses"], listed["revoked"]) == (3, 3, False)


def test_a_revoked_token_no_longer_enrolls_single_use_or_not(store: Store) -> None:
    add_token(store, "one")
    add_token(store, "many")
    store.limit_enrollment_token("many", max_uses=5)
    assert store.revoke_enrollment_token("one", now=NOW)
    assert store.revoke_enrollment_token("many", now=NOW)
    assert not store.revoke_enrollment_token("nope", now=NOW)
    assert redeem(store, "one") is None and redeem(store, "many") is None
    assert all(t["revoked"] for t in store.list_enrollment_tokens())


def test_checking_a_token_does_not_spend_it(store: Store) -> None:
    add_token(store)
    assert store.enrollment_token_usable(token_id="tok1", secret_sha256=SECRET, now=NOW)
    assert redeem(store) == "g"
    assert not store.enrollment_token_usable(token_id="tok1", secret_sha256=SECRET, now=NOW)


def test_a_revoked_api_token_has_no_role(store: Store) -> None:
    store.add_api_token(token_id="api1", secret_sha256=SECRET, role="admin", created_at=NOW)
    assert store.api_token_role(token_id="api1", secret_sha256=SECRET) == "admin"
    assert store.revoke_api_token("api1", now=NOW)
    assert store.api_token_role(token_id="api1", secret_sha256=SECRET) is None
    assert store.list_api_tokens()[0]["revoked"] is True


def ingest_refusals(store: Store, seqs: range, at: datetime, *, expected: int = 0) -> None:
    refusals = [Refusal("a1", s, "clock", "ahead", b"d%d" % s, b"env", at) for s in seqs]
    note = CollectorEvent("a1", "clock_skew", at, {"event.reason": "clock_skew"})
    store.ingest(
        agent_id="a1",
        expected_last_seq=expected,
        last_seq=expected,
        last_digest=b"",
        events=[],
        gaps=[],
        alerts=[],
        now=at,
        refusals=refusals,
        notes=[note],
        counts={"refused.clock": len(seqs)},
    )


def test_refusals_are_kept_newest_first_bounded_and_counted(store: Store) -> None:
    add_agent(store)
    ingest_refusals(store, range(1, delivery_sql.MAX_PER_AGENT + 6), NOW)
    kept = store.list_refusals(agent_id="a1", limit=1000)
    assert len(kept) == delivery_sql.MAX_PER_AGENT
    assert kept[0]["seq"] == delivery_sql.MAX_PER_AGENT + 5
    assert store.delivery_counters("a1")["a1"]["refused.clock"] == delivery_sql.MAX_PER_AGENT + 5
    page = store.list_refusals(agent_id="a1", limit=2, before_id=int(str(kept[1]["id"])))
    assert [r["seq"] for r in page] == [kept[2]["seq"], kept[3]["seq"]]


def test_refusals_older_than_the_retention_go(store: Store) -> None:
    add_agent(store)
    ingest_refusals(store, range(1, 3), NOW - delivery_sql.RETENTION - timedelta(days=1))
    ingest_refusals(store, range(3, 4), NOW)
    assert [r["seq"] for r in store.list_refusals(agent_id="a1")] == [3]
    assert [e["event.reason"] for e in store.list_collector_events(agent_id="a1")] == ["clock_skew"]


def test_a_silent_agent_is_reported_once_per_silence(store: Store) -> None:
    add_agent(store)
    health = {"event.dataset": "shadowai.agent_health", "event.action": "snapshot"}
    store.ingest(
        agent_id="a1",
        expected_last_seq=0,
        last_seq=1,
        last_digest=b"d1",
        events=[StoredEvent(1, b"d1", b"env", NOW, health)],
        gaps=[],
        alerts=[],
        now=NOW,
    )
    later = NOW + timedelta(days=2)
    assert [a for a, _ in store.silent_agents(seen_before=later - timedelta(days=1))] == ["a1"]
    note = CollectorEvent("a1", "silence", later, {"event.reason": "silence"})
    store.record_notes("a1", [note], [], {"silence": 1}, later)
    assert store.silent_agents(seen_before=later - timedelta(days=1)) == []


def test_a_batch_of_refusals_alone_does_not_count_as_the_agent_being_seen(store: Store) -> None:
    add_agent(store)
    ingest_refusals(store, range(1, 3), NOW)
    state = store.get_agent("a1")
    assert state is not None and state.last_seen is None
