"""The spool: ordering, acks, the byte bound and its drops, the hash chain, crash survival."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from agent.errors import SpoolError
from agent.spool import Spool
from wire import envelope
from wire.v1 import events_pb2

REPO = Path(__file__).resolve().parents[2]
KEY = Ed25519PrivateKey.generate()
AGENT_ID = envelope.agent_id_for(KEY.public_key())


def event(i: int = 0, pad: int = 0) -> events_pb2.Event:
    model = events_pb2.ModelFile(path=f"/models/{'x' * pad}{i}.gguf", format="gguf")
    return events_pb2.Event(timestamp_ms=i, action="discovered", model_file=model)


def put(spool: Spool, i: int = 0, pad: int = 0) -> int:
    return spool.append(event(i, pad), agent_id=AGENT_ID, key=KEY, now_ms=1_000 + i)


def decode(data: bytes) -> tuple[events_pb2.Envelope, events_pb2.Payload]:
    env = events_pb2.Envelope.FromString(data)
    payload = events_pb2.Payload.FromString(envelope.verify(env, KEY.public_key()))
    return env, payload


def assert_chain(items: list[tuple[int, bytes]]) -> None:
    """Each stored envelope verifies, carries its seq, and links to the one before it."""
    previous: events_pb2.Envelope | None = None
    for seq, data in items:
        env, payload = decode(data)
        assert payload.seq == seq
        assert payload.agent_id == AGENT_ID
        if previous is not None:
            assert payload.prev_digest == envelope.digest(previous)
        previous = env


def everything(spool: Spool) -> list[tuple[int, bytes]]:
    return spool.pending(limit=10**6, max_bytes=2**40)


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool.open(tmp_path / "spool.db")


def test_appends_get_consecutive_seqs_and_come_back_oldest_first(spool: Spool) -> None:
    assert [put(spool, i) for i in range(5)] == [1, 2, 3, 4, 5]
    items = spool.pending()
    assert [seq for seq, _ in items] == [1, 2, 3, 4, 5]
    assert [decode(data)[1].event.timestamp_ms for _, data in items] == [0, 1, 2, 3, 4]


def test_payload_carries_agent_seq_time_and_event(spool: Spool) -> None:
    put(spool, 7)
    ((_, data),) = spool.pending()
    env, payload = decode(data)
    assert env.key_id == AGENT_ID
    assert (payload.agent_id, payload.seq, payload.created_ms) == (AGENT_ID, 1, 1_007)
    assert payload.prev_digest == b""
    assert payload.event == event(7)


def test_each_envelope_links_to_the_previous_one(spool: Spool) -> None:
    for i in range(10):
        put(spool, i)
    assert_chain(everything(spool))


def test_ack_deletes_up_to_seq_and_counts(spool: Spool) -> None:
    for i in range(5):
        put(spool, i)
    assert spool.ack(3) == 3
    assert [seq for seq, _ in spool.pending()] == [4, 5]
    assert spool.ack(3) == 0
    assert spool.stats().acked_seq == 3


def test_acked_seq_never_goes_down(spool: Spool) -> None:
    for i in range(5):
        put(spool, i)
    spool.ack(4)
    assert spool.ack(2) == 0
    assert spool.stats().acked_seq == 4


def test_ack_past_last_seq_empties_but_remembers_only_last_seq(spool: Spool) -> None:
    for i in range(3):
        put(spool, i)
    assert spool.ack(100) == 3
    assert spool.stats().acked_seq == 3
    assert put(spool) == 4


def test_reopen_keeps_seq_digest_and_acks(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    first = Spool.open(path)
    for i in range(3):
        put(first, i)
    last_env, _ = decode(first.pending()[-1][1])
    first.ack(3)
    first.close()

    again = Spool.open(path)
    assert again.stats().last_seq == 3
    assert again.stats().acked_seq == 3
    assert put(again, 3) == 4
    _, payload = decode(again.pending()[0][1])
    assert payload.prev_digest == envelope.digest(last_env)


def test_pending_stops_at_limit(spool: Spool) -> None:
    for i in range(10):
        put(spool, i)
    assert [seq for seq, _ in spool.pending(limit=3)] == [1, 2, 3]


def test_pending_stops_before_max_bytes(spool: Spool) -> None:
    for i in range(10):
        put(spool, i, pad=100)
    size = len(spool.pending()[1][1])
    items = spool.pending(max_bytes=3 * size + size // 2)
    assert [seq for seq, _ in items] == [1, 2, 3]


def test_pending_returns_one_envelope_larger_than_max_bytes(spool: Spool) -> None:
    put(spool, 0, pad=1000)
    put(spool, 1)
    assert [seq for seq, _ in spool.pending(max_bytes=10)] == [1]


def test_pending_bytes_is_the_sum_of_stored_envelopes(spool: Spool) -> None:
    for i in range(6):
        put(spool, i, pad=i * 10)
    spool.ack(2)
    stats = spool.stats()
    assert stats.pending == 4
    assert stats.pending_bytes == sum(len(data) for _, data in everything(spool))


def test_full_spool_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    probe = Spool.open(tmp_path / "probe.db")
    put(probe, 0, pad=200)
    put(probe, 1, pad=200)
    size = len(probe.pending()[1][1])
    spool = Spool.open(tmp_path / "spool.db", max_bytes=3 * size + size // 2)
    for i in range(6):
        put(spool, i, pad=200)
    stats = spool.stats()
    assert [seq for seq, _ in spool.pending()] == [4, 5, 6]
    assert stats.dropped_total == 3
    assert stats.pending_bytes <= 3 * size + size // 2
    assert_chain(spool.pending())


def test_envelope_over_the_bound_is_kept_and_the_rest_dropped(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path / "spool.db", max_bytes=500)
    put(spool, 0)
    put(spool, 1)
    assert put(spool, 2, pad=2000) == 3
    assert [seq for seq, _ in spool.pending()] == [3]
    assert spool.stats().dropped_total == 2


def test_drops_are_reported_once_and_persist_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = Spool.open(path, max_bytes=600)
    for i in range(8):
        put(spool, i, pad=200)
    dropped = spool.stats().dropped_total
    assert dropped > 0
    spool.close()

    spool = Spool.open(path, max_bytes=600)
    assert spool.stats().dropped_total == dropped
    assert spool.take_dropped() == dropped
    assert spool.take_dropped() == 0
    spool.close()

    spool = Spool.open(path, max_bytes=600)
    assert spool.take_dropped() == 0
    for i in range(8):
        put(spool, i, pad=200)
    assert spool.take_dropped() == 8
    assert spool.stats().dropped_total == dropped + 8


def test_threads_sharing_a_spool_get_distinct_seqs(spool: Spool) -> None:
    def work() -> None:
        for i in range(25):
            put(spool, i)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    items = everything(spool)
    assert [seq for seq, _ in items] == list(range(1, 101))
    assert_chain(items)


def test_corrupt_file_is_a_spool_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    path.write_bytes(b"this is not an SQLite database, just garbage " * 100)
    with pytest.raises(SpoolError) as caught:
        Spool.open(path)
    assert str(path) in str(caught.value)


def test_unopenable_path_is_a_spool_error(tmp_path: Path) -> None:
    with pytest.raises(SpoolError, match="missing"):
        Spool.open(tmp_path / "missing" / "spool.db")


def test_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(SpoolError, match="schema version 99"):
        Spool.open(path)


def test_closed_spool_raises_spool_error(spool: Spool) -> None:
    spool.close()
    with pytest.raises(SpoolError, match="stats"):
        spool.stats()


def test_non_positive_bounds_are_refused(tmp_path: Path, spool: Spool) -> None:
    with pytest.raises(ValueError):
        Spool.open(tmp_path / "other.db", max_bytes=0)
    with pytest.raises(ValueError):
        spool.pending(limit=0)


# A child process that appends forever (or `count` times), printing each seq once append
# has returned: every printed seq is an acknowledged append that must survive.
CHILD = """
import os, sys
from pathlib import Path
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from agent.spool import Spool
from wire.v1 import events_pb2

path, key_hex, agent_id, count, ending = sys.argv[1:6]
key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(key_hex))
spool = Spool.open(Path(path))
i = 0
while int(count) < 0 or i < int(count):
    event = events_pb2.Event(timestamp_ms=i, action="discovered")
    print(spool.append(event, agent_id=agent_id, key=key, now_ms=i), flush=True)
    i += 1
if ending == "exit":
    os._exit(0)
spool.close()
"""


def start_child(path: Path, count: int, ending: str) -> subprocess.Popen[str]:
    key_hex = KEY.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()).hex()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-c", CHILD, str(path), key_hex, AGENT_ID, str(count), ending]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)


def test_appends_survive_sigkill_mid_stream(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    child = start_child(path, -1, "close")
    assert child.stdout is not None
    acknowledged = [int(child.stdout.readline()) for _ in range(40)]
    child.kill()
    child.wait(timeout=60)
    child.stdout.close()

    spool = Spool.open(path)
    items = everything(spool)
    stored = [seq for seq, _ in items]
    assert stored == list(range(1, len(stored) + 1))
    assert set(acknowledged) <= set(stored)
    assert_chain(items)
    assert spool.stats().last_seq == stored[-1]
    assert put(spool) == stored[-1] + 1
    assert_chain(everything(spool))


def test_appends_survive_exit_without_close(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    child = start_child(path, 15, "exit")
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 0
    assert [int(line) for line in out.split()] == list(range(1, 16))

    spool = Spool.open(path)
    items = everything(spool)
    assert [seq for seq, _ in items] == list(range(1, 16))
    assert_chain(items)


def test_two_processes_appending_at_once_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    Spool.open(path).close()
    children = [start_child(path, 40, "close") for _ in range(2)]
    reader = Spool.open(path)
    while any(child.poll() is None for child in children):
        assert_chain(everything(reader))
    outputs = [child.communicate(timeout=120)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0]

    printed = sorted(int(line) for out in outputs for line in out.split())
    items = everything(reader)
    assert printed == [seq for seq, _ in items] == list(range(1, 81))
    assert_chain(items)


class SpoolMachine(RuleBasedStateMachine):
    """Random appends, acks, reopens and drop reports against the spool's bookkeeping."""

    MAX_BYTES = 1500

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.path = Path(self.dir.name) / "spool.db"
        self.spool = Spool.open(self.path, max_bytes=self.MAX_BYTES)
        self.last_seq = 0
        self.acked_away = 0
        self.reported = 0

    @rule(pad=st.integers(min_value=0, max_value=1200))
    def append(self, pad: int) -> None:
        before = everything(self.spool)
        seq = put(self.spool, self.last_seq, pad=pad)
        assert seq == self.last_seq + 1
        self.last_seq = seq
        after = everything(self.spool)
        assert after[-1][0] == seq
        dropped = [item for item in before if item not in after]
        assert dropped == before[: len(dropped)]
        if dropped:
            # Dropping one fewer would not have fit: no envelope was dropped needlessly.
            kept = sum(len(data) for _, data in after)
            assert kept + len(dropped[-1][1]) > self.MAX_BYTES

    @rule(back=st.integers(min_value=-2, max_value=5))
    def ack(self, back: int) -> None:
        self.acked_away += self.spool.ack(self.last_seq - back)

    @rule()
    def reopen(self) -> None:
        self.spool.close()
        self.spool = Spool.open(self.path, max_bytes=self.MAX_BYTES)

    @precondition(lambda self: self.last_seq > 0)
    @rule()
    def take_dropped(self) -> None:
        self.reported += self.spool.take_dropped()
        assert self.reported == self.spool.stats().dropped_total

    @invariant()
    def every_seq_is_pending_acked_or_dropped(self) -> None:
        stats = self.spool.stats()
        items = everything(self.spool)
        assert stats.last_seq == self.last_seq
        assert stats.pending == len(items)
        assert stats.pending + stats.dropped_total + self.acked_away == self.last_seq
        assert stats.pending_bytes == sum(len(data) for _, data in items)
        assert stats.pending_bytes <= self.MAX_BYTES or len(items) == 1
        if items:
            assert [seq for seq, _ in items] == list(range(items[0][0], self.last_seq + 1))
        assert_chain(items)

    def teardown(self) -> None:
        self.spool.close()
        self.dir.cleanup()


TestSpoolMachine = SpoolMachine.TestCase
TestSpoolMachine.settings = settings(max_examples=30, stateful_step_count=20, deadline=None)
