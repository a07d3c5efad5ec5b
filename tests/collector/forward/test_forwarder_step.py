"""One forwarding attempt with a fake transport: ack, back off, halve, reject."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from collector.forward.forwarder import Forwarder
from collector.forward.policy import Verdict
from collector.forward.queue import ForwardQueue, QueuedRow
from collector.forward.transport import Delivery


class FakeSiem:
    """Answers from a script; refuses any batch holding a record with b"bad" in it."""

    def __init__(self, answers: Sequence[Delivery | Exception] = ()) -> None:
        self.answers = list(answers)
        self.batches: list[list[bytes]] = []

    def send(self, records: Sequence[bytes]) -> Delivery:
        self.batches.append(list(records))
        if self.answers:
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        if any(b"bad" in record for record in records):
            return Delivery(Verdict.REFUSED, detail="HTTP 400")
        return Delivery(Verdict.ACCEPTED)

    def close(self) -> None:
        pass


def forwarder(tmp_path: Path, siem: FakeSiem) -> tuple[Forwarder, ForwardQueue]:
    queue = ForwardQueue.open(tmp_path / "q.sqlite3", max_bytes=2**20)
    return (
        Forwarder(
            name="fake",
            queue=queue,
            transport=siem,
            format_row=lambda row, now: str(row.event["v"]).encode(),
            clock=lambda: 100.0,
            rand=lambda: 0.5,
            batch_max_events=8,
            backoff_base_s=1.0,
            backoff_cap_s=10.0,
        ),
        queue,
    )


def fill(queue: ForwardQueue, values: Sequence[str]) -> None:
    queue.append([("event", {"v": value}) for value in values], now_s=90.0)


def test_an_empty_queue_sends_nothing(tmp_path: Path) -> None:
    siem = FakeSiem()
    step, _ = forwarder(tmp_path, siem)
    assert step.step() is None
    assert siem.batches == []


def test_an_accepted_batch_leaves_the_queue(tmp_path: Path) -> None:
    siem = FakeSiem()
    fwd, queue = forwarder(tmp_path, siem)
    fill(queue, ["a", "b", "c"])
    assert fwd.step() == 0.0
    assert siem.batches == [[b"a", b"b", b"c"]]
    assert queue.stats().rows == 0
    assert fwd.metrics().sent == 3


def test_failures_back_off_exponentially_and_success_resets(tmp_path: Path) -> None:
    busy = Delivery(Verdict.RETRY, None, "HTTP 503")
    siem = FakeSiem([ConnectionRefusedError(), busy, busy, busy, busy, busy])
    fwd, queue = forwarder(tmp_path, siem)
    fill(queue, ["a"])
    delays = [fwd.step() for _ in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]  # half the window (rand 0.5), cap 10
    assert fwd.step() == 0.0
    fill(queue, ["b"])
    siem.answers = [busy]
    assert fwd.step() == 0.5
    metrics = fwd.metrics()
    assert (metrics.failed, metrics.sent, metrics.queued, metrics.lag_s) == (7, 1, 1, 10.0)


def test_the_peer_hint_sets_the_wait(tmp_path: Path) -> None:
    siem = FakeSiem([Delivery(Verdict.RETRY, 7.0, "HTTP 429")])
    fwd, queue = forwarder(tmp_path, siem)
    fill(queue, ["a"])
    assert fwd.step() == 7.0


def test_a_refused_batch_is_halved_until_the_bad_record_is_dropped_alone(tmp_path: Path) -> None:
    siem = FakeSiem()
    fwd, queue = forwarder(tmp_path, siem)
    values = ["a", "b", "c", "bad", "d", "e", "f", "g"]
    fill(queue, values)
    for _ in range(20):
        if fwd.step() is None:
            break
    delivered = [record for batch in siem.batches for record in batch]
    accepted = [r for r in delivered if r != b"bad"]
    assert sorted(set(accepted)) == sorted(v.encode() for v in values if v != "bad")
    assert (fwd.metrics().rejected, fwd.metrics().sent, queue.stats().rows) == (1, 7, 0)


def test_rows_reach_the_formatter_with_their_kind(tmp_path: Path) -> None:
    seen: list[QueuedRow] = []
    queue = ForwardQueue.open(tmp_path / "q.sqlite3", max_bytes=2**20)
    fwd = Forwarder(
        name="fake",
        queue=queue,
        transport=FakeSiem(),
        format_row=lambda row, now: seen.append(row) or b"x",
        clock=lambda: 0.0,
        rand=lambda: 0.0,
    )
    queue.append([("alert", {"v": 1}), ("event", {"v": 2})], now_s=0)
    fwd.step()
    assert [(row.kind, row.event) for row in seen] == [("alert", {"v": 1}), ("event", {"v": 2})]
