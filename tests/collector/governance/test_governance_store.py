"""Alerts that mean something and correlations that outlive a restart, on SQLite and on a
shared PostgreSQL (two Store objects are two collector replicas)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from collector.governance import parse_rules
from collector.governance.correlations import WindowEntry
from collector.outcome import Outcome, correlation_alerts, evaluate_event
from collector.service import CollectorService
from collector.store import AgentRecord, NewAlert, Store, StoredEvent
from collector.store.lifecycle import fingerprint_of, subject_of

T0 = datetime(2027, 1, 1, 9, 0, tzinfo=UTC)
BASE = "55555555-5555-4555-8555-555555555555"
CORRELATION = "66666666-6666-4666-8666-666666666666"
RULES = f"""\
title: unapproved gguf
id: {BASE}
level: low
logsource: {{product: shadowai, category: model_file}}
detection:
  sel: {{ai.model.format: gguf}}
  removed: {{event.action: removed}}
  condition: sel and not removed
---
title: same gguf on three hosts
id: {CORRELATION}
level: high
correlation:
  type: value_count
  rules: [{BASE}]
  group-by: [file.hash.sha256]
  timespan: 1h
  condition: {{gte: 3, field: agent.id}}
---
title: reload failed
id: 77777777-7777-4777-8777-777777777777
level: high
logsource: {{product: shadowai, category: collector}}
detection:
  sel: {{event.reason: rules_reload_failed}}
  condition: sel
"""
RULESET = parse_rules([("r.yml", RULES)])


def enroll(store: Store, agent_id: str = "agent-1") -> str:
    store.add_agent(AgentRecord(agent_id, b"\x01" * 32, "mbp", "linux", "dev", "0.1", T0))
    return agent_id


def model_event(action: str, size: int = 1) -> dict[str, object]:
    return {
        "event.dataset": "shadowai.model_file",
        "event.action": action,
        "file.path": "/home/dev/m.gguf",
        "file.size": size,
        "ai.model.format": "gguf",
        "file.hash.sha256": "ab" * 32,
    }


def ship(store: Store, agent_id: str, seq: int, event: dict[str, object], at: datetime) -> None:
    """Ingest one event as the service would: evaluate, then store events and alerts."""
    outcome = Outcome()
    evaluate_event(RULESET, event, agent_id=agent_id, seq=seq, now=at, into=outcome)
    store.ingest(
        agent_id=agent_id,
        expected_last_seq=seq - 1,
        last_seq=seq,
        last_digest=b"d%d" % seq,
        events=[StoredEvent(seq, b"d%d" % seq, b"env", at, event)],
        gaps=[],
        alerts=outcome.alerts,
        now=at,
    )


def only_alert(store: Store) -> dict[str, object]:
    (alert,) = store.list_alerts()
    return alert


def test_an_unchanged_snapshot_neither_counts_nor_reopens(store: Store) -> None:
    agent_id = enroll(store)
    ship(store, agent_id, 1, model_event("discovered"), T0)
    ship(store, agent_id, 2, model_event("snapshot"), T0 + timedelta(hours=1))
    ship(store, agent_id, 3, model_event("snapshot"), T0 + timedelta(hours=2))
    alert = only_alert(store)
    assert (alert["count"], alert["status"]) == (1, "open")
    assert alert["last_seen"] == (T0 + timedelta(hours=2)).isoformat()
    store.set_alert_status(int(str(alert["id"])), "resolved", by="alice", now=T0)
    ship(store, agent_id, 4, model_event("snapshot"), T0 + timedelta(hours=3))
    assert only_alert(store)["status"] == "resolved"
    ship(store, agent_id, 5, model_event("changed", size=2), T0 + timedelta(hours=4))
    alert = only_alert(store)
    assert (alert["count"], alert["status"], alert["status_by"]) == (2, "open", "system")


def test_a_removed_model_resolves_its_alert_with_the_reason(store: Store) -> None:
    agent_id = enroll(store)
    ship(store, agent_id, 1, model_event("discovered"), T0)
    alert_id = int(str(only_alert(store)["id"]))
    store.set_alert_status(alert_id, "acknowledged", by="alice", now=T0 + timedelta(minutes=1))
    ship(store, agent_id, 2, model_event("removed"), T0 + timedelta(hours=1))
    alert = only_alert(store)
    assert (alert["status"], alert["status_reason"], alert["status_by"]) == (
        "resolved",
        "model removed",
        "system",
    )
    history = [(c["status"], c["by"]) for c in store.alert_history(alert_id)]
    assert history == [("open", "system"), ("acknowledged", "alice"), ("resolved", "system")]


def test_a_suppressed_alert_stays_quiet_until_its_date_then_reopens_on_change(
    store: Store,
) -> None:
    agent_id = enroll(store)
    ship(store, agent_id, 1, model_event("discovered"), T0)
    alert_id = int(str(only_alert(store)["id"]))
    until = T0 + timedelta(days=1)
    store.set_alert_status(alert_id, "suppressed", by="bob", until=until, now=T0)
    ship(store, agent_id, 2, model_event("changed", size=2), T0 + timedelta(hours=1))
    assert only_alert(store)["status"] == "suppressed"
    ship(store, agent_id, 3, model_event("changed", size=3), until + timedelta(hours=1))
    assert only_alert(store)["status"] == "open"


def entry(agent: str, at: datetime) -> WindowEntry:
    (correlation,) = RULESET.correlations
    from collector.governance.correlations import window_entry

    event = {**model_event("discovered"), "agent.id": agent}
    found = window_entry(correlation, BASE, event, agent, at)
    assert found is not None
    return found


def correlate(store: Store, entries: list[WindowEntry], now: datetime) -> list[NewAlert]:
    seconds = {c.id: c.seconds for c in RULESET.correlations}
    tallies = store.correlate(entries, seconds=seconds, now=now)
    return correlation_alerts(RULESET, tallies, entries, now)


def test_a_correlation_window_holds_across_restarts_and_replicas(
    open_store: Callable[[], Store],
) -> None:
    first = open_store()
    assert correlate(first, [entry("a1", T0)], T0) == []
    assert correlate(first, [entry("a2", T0 + timedelta(minutes=1))], T0) == []
    first.close()  # a restart: the window lives in the database
    second, third = open_store(), open_store()
    again = correlate(second, [entry("a2", T0 + timedelta(minutes=2))], T0)
    assert again == [], "one host twice is still two hosts"
    (alert,) = correlate(third, [entry("a3", T0 + timedelta(minutes=3))], T0)
    assert (alert.rule_id, alert.level) == (CORRELATION, "high")
    second.raise_alerts([alert])
    assert [a["rule_id"] for a in third.list_alerts()] == [CORRELATION]
    late = T0 + timedelta(hours=2)
    assert correlate(third, [entry("a4", late)], late) == [], "the old matches fell out"
    second.close()
    third.close()


def test_collector_events_are_stored_and_evaluated_by_the_same_rules(store: Store) -> None:
    service = CollectorService(store=store, rules=lambda: RULESET, clock=lambda: T0)
    event: dict[str, object] = {"event.reason": "rules_reload_failed", "agent.id": ""}
    service.record_collector_event(event)
    (stored,) = store.list_collector_events()
    assert stored["event.dataset"] == "shadowai.collector"
    assert [a["rule_title"] for a in store.list_alerts()] == ["reload failed"]


def test_fingerprints_ignore_what_changes_when_nothing_did() -> None:
    one = {**model_event("discovered"), "@timestamp": "t1", "event.sequence": 1}
    two = {**model_event("snapshot"), "@timestamp": "t2", "event.sequence": 9}
    assert fingerprint_of(one) == fingerprint_of(two)
    assert fingerprint_of(one) != fingerprint_of({**one, "file.size": 5})
    assert subject_of(one) == "/home/dev/m.gguf"


def test_repeats_move_one_row_unless_every_match_counts(store: Store) -> None:
    (correlation,) = RULESET.correlations
    seconds = {correlation.id: correlation.seconds}
    repeats = [entry("a1", T0 + timedelta(minutes=i)) for i in range(3)]
    (distinct,) = store.correlate(repeats, seconds=seconds, now=T0).values()
    assert (distinct.events, distinct.values) == (1, 1), "value_count keeps one row per value"
    counted = frozenset({correlation.id})
    (every,) = store.correlate(repeats, seconds=seconds, now=T0, counted=counted).values()
    assert every.events == 4, "event_count keeps every match (plus the distinct row)"


def test_a_batch_over_many_groups_tallies_each_group_apart(store: Store) -> None:
    from collector.governance.correlations import window_entry
    from collector.store.correlation import TALLY_CHUNK

    (correlation,) = RULESET.correlations
    seconds = {correlation.id: correlation.seconds}
    entries = []
    for n in range(TALLY_CHUNK * 2 + 7):  # more groups than one tally query holds
        event = {**model_event("discovered"), "file.hash.sha256": f"{n:064x}"}
        hosts = 1 + n % 3
        for host in range(hosts):
            found = window_entry(correlation, BASE, {**event, "agent.id": f"h{host}"}, "a", T0)
            assert found is not None
            entries.append(found)
    tallies = store.correlate(entries, seconds=seconds, now=T0)
    assert len(tallies) == TALLY_CHUNK * 2 + 7
    assert sorted(t.values for t in tallies.values()) == sorted(
        1 + n % 3 for n in range(TALLY_CHUNK * 2 + 7)
    )
    alerts = correlation_alerts(RULESET, tallies, entries, T0)
    assert len(alerts) == len([n for n in range(TALLY_CHUNK * 2 + 7) if n % 3 == 2])


def test_two_writers_completing_a_group_at_once_alert_once(
    open_store: Callable[[], Store],
) -> None:
    """Two replicas each store the match that completes a group at the same moment: one of
    them must count both (on PostgreSQL neither sees the other's uncommitted row)."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from collector.governance.correlations import window_entry

    (correlation,) = RULESET.correlations
    seconds = {correlation.id: correlation.seconds}
    replicas = [open_store(), open_store()]
    groups, fired = 30, 0

    def match(sha: str, agent: str) -> WindowEntry:
        event = {**model_event("discovered"), "file.hash.sha256": sha, "agent.id": agent}
        found = window_entry(correlation, BASE, event, agent, T0)
        assert found is not None
        return found

    def last(replica: Store, entry: WindowEntry, barrier: Barrier) -> int:
        barrier.wait()
        tallies = replica.correlate([entry], seconds=seconds, now=T0)
        return len(correlation_alerts(RULESET, tallies, [entry], T0))

    with ThreadPoolExecutor(2) as pool:
        for n in range(groups):
            sha = f"{n:064x}"
            replicas[0].correlate([match(sha, "h1")], seconds=seconds, now=T0)
            barrier = Barrier(2)
            racing = [
                pool.submit(last, replica, match(sha, agent), barrier)
                for replica, agent in zip(replicas, ("h2", "h3"), strict=True)
            ]
            fired += sum(future.result() for future in racing)
    for replica in replicas:
        replica.close()
    # Three hosts complete a group once; a fourth match would alert again (dedup is the
    # alert store's), so exactly one of the two racing writers fires per group.
    assert fired == groups


def test_a_batch_keeps_its_matches_in_the_window_in_its_own_transaction(
    open_store: Callable[[], Store],
) -> None:
    from collector.store.correlation import Window

    (correlation,) = RULESET.correlations
    stores = [open_store() for _ in range(3)]  # one replica per agent
    tallies = {}
    for i, store in enumerate(stores):
        agent_id = enroll(store, f"agent-{i}")
        event = {**model_event("discovered"), "agent.id": agent_id}
        outcome = Outcome()
        evaluate_event(RULESET, event, agent_id=agent_id, seq=1, now=T0, into=outcome)
        tallies = store.ingest(
            agent_id=agent_id,
            expected_last_seq=0,
            last_seq=1,
            last_digest=b"d",
            events=[StoredEvent(1, b"d", b"env", T0, event)],
            gaps=[],
            alerts=outcome.alerts,
            now=T0,
            window=Window(outcome.window, {correlation.id: correlation.seconds}),
        )
    (alert,) = correlation_alerts(RULESET, tallies, [entry("agent-2", T0)], T0)
    assert alert.rule_id == CORRELATION
    for store in stores:
        store.close()


def test_a_model_that_comes_back_reopens_its_alert_even_unchanged(store: Store) -> None:
    agent_id = enroll(store)
    ship(store, agent_id, 1, model_event("discovered"), T0)
    ship(store, agent_id, 2, model_event("removed"), T0 + timedelta(hours=1))
    assert only_alert(store)["status"] == "resolved"
    ship(store, agent_id, 3, model_event("discovered"), T0 + timedelta(hours=2))
    alert = only_alert(store)
    assert (alert["status"], alert["status_reason"], alert["count"]) == ("open", "it is back", 2)
