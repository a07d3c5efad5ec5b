"""The forwarding queue: durable across reopen, bounded in bytes, events dropped before alerts."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.forward.queue import ForwardQueue, QueueError


def event(n: int, pad: int = 0) -> dict[str, object]:
    return {"n": n, "pad": "x" * pad}


def numbers(queue: ForwardQueue) -> list[tuple[str, int]]:
    rows = queue.peek(limit=10_000, max_bytes=2**30)
    return [(row.kind, int(str(row.event["n"]))) for row in rows]


def test_rows_come_back_in_order_and_leave_only_when_acked(tmp_path: Path) -> None:
    queue = ForwardQueue.open(tmp_path / "q.sqlite3", max_bytes=2**20)
    queue.append([("event", event(1)), ("alert", event(2)), ("event", event(3))], now_s=10.0)
    first = queue.peek(limit=2, max_bytes=2**20)
    assert [(r.kind, r.event["n"], r.created) for r in first] == [
        ("event", 1, 10.0),
        ("alert", 2, 10.0),
    ]
    assert numbers(queue) == [("event", 1), ("alert", 2), ("event", 3)]
    assert queue.ack([r.id for r in first]) == 2
    assert numbers(queue) == [("event", 3)]
    assert queue.stats().lag_s(25.0) == 15.0


def test_the_queue_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    queue = ForwardQueue.open(path, max_bytes=2**20)
    queue.append([("event", event(n)) for n in range(5)], now_s=1.0)
    queue.ack([queue.peek(limit=1, max_bytes=1)[0].id])
    queue.close()
    again = ForwardQueue.open(path, max_bytes=2**20)
    assert [n for _, n in numbers(again)] == [1, 2, 3, 4]
    assert again.stats().rows == 4


def test_a_batch_stops_at_its_byte_budget_but_holds_at_least_one_row(tmp_path: Path) -> None:
    queue = ForwardQueue.open(tmp_path / "q.sqlite3", max_bytes=2**20)
    queue.append([("event", event(n, pad=1000)) for n in range(5)], now_s=1.0)
    assert len(queue.peek(limit=10, max_bytes=2500)) == 2
    assert len(queue.peek(limit=10, max_bytes=1)) == 1


def test_when_full_the_oldest_events_go_and_the_alerts_stay(tmp_path: Path) -> None:
    queue = ForwardQueue.open(tmp_path / "q.sqlite3", max_bytes=5000)
    # Each row is 1,219 bytes of JSON: four fit in 5,000.
    queue.append([("alert", event(0, 1200))], now_s=1.0)
    queue.append([("event", event(n, 1200)) for n in range(1, 4)], now_s=2.0)
    queue.append([("event", event(4, 1200)), ("event", event(5, 1200))], now_s=3.0)
    assert numbers(queue) == [("alert", 0), ("event", 3), ("event", 4), ("event", 5)]
    stats = queue.stats()
    assert stats.dropped_total == 2
    assert stats.bytes <= 5000


def test_an_event_never_pushes_out_an_alert(tmp_path: Path) -> None:
    queue = ForwardQueue.open(tmp_path / "q.sqlite3", max_bytes=3000)
    queue.append([("alert", event(n, 900)) for n in range(3)], now_s=1.0)
    assert queue.append([("event", event(3, 900))], now_s=2.0) == 0
    assert [n for _, n in numbers(queue)] == [0, 1, 2]
    assert queue.stats().dropped_total == 1


def test_a_new_alert_pushes_out_the_oldest_alert_when_only_alerts_are_left(tmp_path: Path) -> None:
    queue = ForwardQueue.open(tmp_path / "q.sqlite3", max_bytes=3000)
    queue.append([("alert", event(n, 900)) for n in range(4)], now_s=1.0)
    assert [n for _, n in numbers(queue)] == [1, 2, 3]


def test_an_ack_for_rows_dropped_meanwhile_keeps_the_byte_count_right(tmp_path: Path) -> None:
    queue = ForwardQueue.open(tmp_path / "q.sqlite3", max_bytes=3000)
    queue.append([("event", event(n, 900)) for n in range(3)], now_s=1.0)
    in_flight = queue.peek(limit=3, max_bytes=2**20)
    queue.append([("event", event(3, 900))], now_s=2.0)  # drops row 0 while it is in flight
    assert queue.ack([row.id for row in in_flight]) == 2
    assert numbers(queue) == [("event", 3)]
    queue.ack([queue.peek(limit=1, max_bytes=1)[0].id])
    assert (queue.stats().rows, queue.stats().bytes) == (0, 0)


def test_hostile_strings_are_stored_as_valid_text(tmp_path: Path) -> None:
    queue = ForwardQueue.open(tmp_path / "q.sqlite3", max_bytes=2**20)
    queue.append([("event", {"file.path": "/m/caf\udce9\x00.gguf", "x": float("nan")})], now_s=1)
    (row,) = queue.peek(limit=1, max_bytes=2**20)
    assert row.event == {"file.path": "/m/caf\ufffd\x00.gguf", "x": None}


def test_a_queue_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(QueueError, match=r"q\.sqlite3"):
        ForwardQueue.open(path, max_bytes=2**20)


OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("append"), st.lists(st.tuples(st.booleans(), st.integers(0, 700)), max_size=6)
        ),
        st.tuples(st.just("ack"), st.integers(1, 5)),
    ),
    max_size=25,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(OPS)
def test_any_sequence_keeps_the_bound_the_byte_count_and_the_alerts(
    tmp_path: Path, ops: list[tuple[str, Any]]
) -> None:
    queue = ForwardQueue.open(tmp_path / f"{uuid.uuid4().hex}.sqlite3", max_bytes=3000)
    for op, arg in ops:
        before = queue.peek(limit=10_000, max_bytes=2**30)
        if op == "append":
            items = [("alert" if alert else "event", event(0, pad)) for alert, pad in arg]
            queue.append(items, now_s=1.0)
        else:
            queue.ack([row.id for row in queue.peek(limit=arg, max_bytes=2**20)])
        rows = queue.peek(limit=10_000, max_bytes=2**30)
        stats = queue.stats()
        sizes = [len(json.dumps(row.event, ensure_ascii=False).encode()) for row in rows]
        assert stats.bytes == sum(sizes) <= 3000
        assert stats.rows == len(rows)
        if op == "append":
            # An alert goes for room only once every older event has gone.
            left = {row.id for row in rows}
            lost_alerts = [r.id for r in before if r.kind == "alert" and r.id not in left]
            events_left = [r.id for r in rows if r.kind == "event"]
            if lost_alerts and events_left:
                assert min(events_left) > max(lost_alerts)
    queue.close()
