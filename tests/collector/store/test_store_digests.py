"""The digest summary and host model counts kept on ingest equal a recount from the rows."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.paging import Listing
from collector.store import AgentRecord, Store, StoredEvent
from collector.store.digests import PriorRow, digest_changes, unchanged
from collector.store.inventory import MODEL_COPIES, InventoryEnd, inventory_change, net_changes

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
_agents = itertools.count()
ACTIONS = ("discovered", "changed", "snapshot", "removed")


def _event(action: str, path: int, digest: int | None) -> dict[str, object]:
    event: dict[str, object] = {
        "event.dataset": "shadowai.model_file",
        "event.action": action,
        "file.path": f"/m/{path}.gguf",
        "ai.model.name": f"model {digest}",
    }
    if digest is not None:
        event["file.hash.sha256"] = f"{digest:064x}"
    return event


def _summary(store: Store) -> tuple[list[tuple[object, ...]], list[object]]:
    digests = store.digests_page(Listing(limit=1000, sort="sha256")).items
    hosts = store.hosts_page(Listing(limit=1000, sort="name")).items
    return [(d["sha256"], d["hosts"], d["files"]) for d in digests], [
        (h["agent_id"], h["model_count"]) for h in hosts
    ]


histories = st.lists(
    st.tuples(
        st.integers(0, 1),  # which agent
        st.sampled_from(ACTIONS),
        st.integers(0, 3),  # path
        st.none() | st.integers(0, 2),  # digest
        st.booleans(),  # ship the batch after this event
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories)
def test_kept_counts_equal_a_recount_after_any_history(
    store: Store, history: list[tuple[int, str, int, int | None, bool]]
) -> None:
    agents = [f"agent-{next(_agents)}" for _ in range(2)]
    for agent_id in agents:
        store.add_agent(AgentRecord(agent_id, bytes(32), agent_id, "linux", "g", "1", T0))
    seqs = {agent_id: 0 for agent_id in agents}
    pending: dict[str, list[dict[str, object]]] = {agent_id: [] for agent_id in agents}
    for step, (who, action, path, digest, ship) in enumerate(history):
        agent_id = agents[who]
        pending[agent_id].append(_event(action, path, digest))
        if ship or step == len(history) - 1:
            for each in agents:
                seqs[each] = _ship(
                    store, each, seqs[each], pending[each], T0 + timedelta(minutes=step)
                )
                pending[each] = []
    kept = _summary(store)
    store.rebuild_digests()
    assert _summary(store) == kept


def _ship(
    store: Store, agent_id: str, seq: int, events: list[dict[str, object]], at: datetime
) -> int:
    if not events:
        return seq
    stored = [StoredEvent(seq + i + 1, b"d", b"e", at, e) for i, e in enumerate(events)]
    store.ingest(
        agent_id=agent_id,
        expected_last_seq=seq,
        last_seq=seq + len(events),
        last_digest=b"d",
        events=stored,
        gaps=[],
        alerts=[],
        now=at,
    )
    return seq + len(events)


def test_a_file_whose_content_changed_recounts_both_digests_but_not_the_host() -> None:
    change = inventory_change(_event("changed", 1, 2))
    assert change is not None
    rows, ends = net_changes([(change, T0)])
    prior = {change.key_sha256: PriorRow(f"{1:064x}", True)}
    changes = digest_changes(rows, ends, prior)
    assert changes.recount == {f"{1:064x}", f"{2:064x}"}
    assert not changes.host_changed
    assert set(changes.seen) == {f"{2:064x}"}


def test_a_snapshot_of_an_unchanged_file_recounts_nothing() -> None:
    change = inventory_change(_event("snapshot", 1, 2))
    assert change is not None
    rows, ends = net_changes([(change, T0)])
    changes = digest_changes(rows, ends, {change.key_sha256: PriorRow(f"{2:064x}", True)})
    assert changes.recount == set() and not changes.host_changed


def test_removing_a_live_file_recounts_its_digest_and_its_host() -> None:
    change = inventory_change(_event("removed", 1, None))
    assert change is not None
    end = InventoryEnd("models", change.key_sha256, T0)
    changes = digest_changes([], [end], {change.key_sha256: PriorRow(f"{2:064x}", True)})
    assert changes.recount == {f"{2:064x}"} and changes.host_changed
    again = digest_changes([], [end], {change.key_sha256: PriorRow(f"{2:064x}", False)})
    assert again.recount == set() and not again.host_changed


def test_only_a_live_file_with_the_same_column_copies_is_unchanged() -> None:
    change = inventory_change(_event("snapshot", 1, 2))
    assert change is not None
    (row,), _ = net_changes([(change, T0)])
    copies = tuple(change.columns[name] for name in MODEL_COPIES)
    key = change.key_sha256
    assert unchanged(row, {key: PriorRow(f"{2:064x}", True, copies)})
    assert not unchanged(row, {})  # new
    assert not unchanged(row, {key: PriorRow(f"{2:064x}", False, copies)})  # reopened
    renamed = tuple(
        "other" if name == "name" else v for name, v in zip(MODEL_COPIES, copies, strict=True)
    )
    assert not unchanged(row, {key: PriorRow(f"{2:064x}", True, renamed)})
