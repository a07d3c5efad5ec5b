"""Delivery on the agent: resync of a fresh spool, quarantine, revocation, pushback, deadline,
spool levels and what is dropped first, corrupt and vanished spool files."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent import resync, spoolfile, spoolstate
from agent.resync import Resync
from agent.shipper import Published, Rejected, Revoked, ShipError, ShipStats, drain
from agent.spool import Spool
from wire import envelope
from wire.v1 import events_pb2

KEY = Ed25519PrivateKey.generate()
AGENT_ID = envelope.agent_id_for(KEY.public_key())


def event(i: int, action: str = "discovered", pad: int = 0) -> events_pb2.Event:
    model = events_pb2.ModelFile(path=f"/m/{'x' * pad}{i}.gguf")
    return events_pb2.Event(timestamp_ms=i, action=action, model_file=model)


def put(spool: Spool, i: int, action: str = "discovered", pad: int = 0) -> int:
    return spool.append(event(i, action, pad), agent_id=AGENT_ID, key=KEY, now_ms=1000 + i)


def payload(data: bytes) -> events_pb2.Payload:
    env = events_pb2.Envelope.FromString(data)
    return events_pb2.Payload.FromString(envelope.verify(env, KEY.public_key()))


@dataclass
class FakeCollector:
    """Holds a chain position, refuses what it is told to, and records what it got."""

    last_seq: int = 0
    last_digest: bytes = b""
    refuse: dict[int, str] = field(default_factory=dict)  # seq -> code
    errors: list[ShipError] = field(default_factory=list)
    got: list[events_pb2.Payload] = field(default_factory=list)
    snapshot_requested: bool = False

    def position(self, agent_id: str) -> Published:
        return Published(self.last_seq, (), self.last_seq, self.last_digest)

    def publish(self, envelopes: Sequence[bytes]) -> Published:
        if self.errors:
            raise self.errors.pop(0)
        rejections = []
        for index, data in enumerate(envelopes):
            p = payload(data)
            if p.seq in self.refuse:
                rejections.append(Rejected(index, p.seq, self.refuse[p.seq], "refused"))
                continue
            self.got.append(p)
            self.last_seq = p.seq
            self.last_digest = envelope.digest(events_pb2.Envelope.FromString(data))
        top = max(payload(d).seq for d in envelopes)
        return Published(top, rejections, self.last_seq, self.last_digest, self.snapshot_requested)


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool.open(tmp_path / "spool.db")


def test_a_fresh_spool_continues_above_the_collectors_position(spool: Spool) -> None:
    put(spool, 1)
    put(spool, 2)
    collector = FakeCollector(last_seq=41, last_digest=b"d41")
    wanted: list[bool] = []
    sync = Resync(AGENT_ID, KEY, on_snapshot=lambda: wanted.append(True))
    assert drain(spool, collector, stop=threading.Event(), stats=ShipStats(), sync=sync)
    assert [(p.seq, p.event.timestamp_ms) for p in collector.got] == [(42, 1), (43, 2)]
    assert collector.got[0].prev_digest == b"d41"
    assert wanted and spoolstate.flag(spool, "snapshot_wanted") == 1
    assert put(spool, 3) == 44


def test_a_spool_that_has_shipped_is_not_re_signed(spool: Spool) -> None:
    sync = Resync(AGENT_ID, KEY)
    collector = FakeCollector()
    put(spool, 1)
    drain(spool, collector, stop=threading.Event(), stats=ShipStats(), sync=sync)
    put(spool, 2)
    drain(spool, collector, stop=threading.Event(), stats=ShipStats(), sync=sync)
    assert [p.seq for p in collector.got] == [1, 2]


def test_a_collector_ahead_of_this_spool_moves_its_head_and_asks_for_a_snapshot(
    spool: Spool,
) -> None:
    spoolstate.set_flag(spool, "needs_resync", 0)
    put(spool, 1)
    collector = FakeCollector()
    result = Published(1, (), 9, b"d9")
    resync.settle(spool, spool.pending(), result, ShipStats(), sync=None)
    assert put(spool, 2) == 10
    assert payload(spool.pending()[-1][1]).prev_digest == b"d9"
    assert spoolstate.flag(spool, "snapshot_wanted") == 1
    del collector


def test_refused_envelopes_leave_the_queue_and_the_rest_ship(spool: Spool) -> None:
    for i in range(4):
        put(spool, i)
    collector = FakeCollector(refuse={2: "clock"})
    stats = ShipStats()
    assert drain(spool, collector, stop=threading.Event(), stats=stats, sync=Resync(AGENT_ID, KEY))
    assert [p.seq for p in collector.got] == [1, 3, 4]
    assert spoolstate.quarantined(spool) == [(2, "clock", "refused")]
    assert resync.health_fields(spool)["agent.health.refused_reasons"] == ["clock: 1"]
    assert resync.health_fields(spool)["agent.health.refused_envelopes"] == 0  # reported once


def test_a_revoked_agent_stops_sending_and_remembers_it(spool: Spool) -> None:
    put(spool, 1)
    collector = FakeCollector(errors=[Revoked("PERMISSION_DENIED: revoked")])
    stats = ShipStats()
    assert not drain(spool, collector, stop=threading.Event(), stats=stats)
    assert stats.revoked and resync.status_fields(spool)["revoked"] is True
    again = FakeCollector()
    assert not drain(spool, again, stop=threading.Event(), stats=ShipStats())
    assert again.got == []


def test_the_collectors_pushback_sets_the_wait(spool: Spool) -> None:
    put(spool, 1)
    waits: list[float] = []

    class Recording(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            waits.append(timeout or 0.0)
            return False

    collector = FakeCollector(errors=[ShipError("RESOURCE_EXHAUSTED: busy", retry_after=7.0)])
    drain(spool, collector, stop=Recording(), stats=ShipStats(), rand=lambda: 0.0)
    assert waits == [7.0]


def test_drain_gives_up_at_its_deadline(spool: Spool) -> None:
    put(spool, 1)
    now = [0.0]
    collector = FakeCollector(errors=[ShipError("UNAVAILABLE: away")] * 50)
    stats = ShipStats()

    class Clocked(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            now[0] += timeout or 0.0
            return False

    done = drain(
        spool,
        collector,
        stop=Clocked(),
        stats=stats,
        rand=lambda: 0.99,
        deadline=5.0,
        clock=lambda: now[0],
    )
    assert not done and stats.gave_up and now[0] == pytest.approx(5.0)


def test_a_full_spool_drops_ordinary_events_before_snapshots(tmp_path: Path) -> None:
    probe = Spool.open(tmp_path / "probe.db")
    put(probe, 0, pad=200)
    size = len(probe.pending()[0][1])
    spool = Spool.open(tmp_path / "spool.db", max_bytes=4 * size + size // 2)
    put(spool, 1, "snapshot", pad=200)
    for i in range(2, 8):
        put(spool, i, pad=200)
    kept = [payload(d).event.action for _, d in spool.pending(limit=100)]
    assert kept[0] == "snapshot" and len(kept) == 4
    assert spool.stats().level == "high"


@pytest.mark.parametrize(("used", "level"), [(10, "ok"), (90, "high"), (99, "full")])
def test_spool_levels(tmp_path: Path, used: int, level: str) -> None:
    from agent.spool import SpoolStats

    assert SpoolStats(1, used, 0, 1, 0, max_bytes=100).level == level


def test_a_corrupt_spool_is_moved_aside_and_a_fresh_one_reports_the_reset(
    tmp_path: Path,
) -> None:
    path = tmp_path / "spool.db"
    path.write_bytes(b"garbage, not SQLite " * 200)
    spool = spoolfile.open_spool(path, max_bytes=2**20, now=datetime(2026, 12, 4, tzinfo=UTC))
    assert (tmp_path / "spool.db.corrupt-20261204T000000Z").exists()
    assert spoolstate.flag(spool, "needs_resync") == 1
    assert resync.health_fields(spool)["agent.health.spool_resets"] == 1
    assert resync.health_fields(spool)["agent.health.spool_resets"] == 0
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_a_spool_deleted_under_the_running_agent_starts_over(spool: Spool) -> None:
    sync = Resync(AGENT_ID, KEY)
    collector = FakeCollector()
    put(spool, 1)
    drain(spool, collector, stop=threading.Event(), stats=ShipStats(), sync=sync)
    os.unlink(spool.path)
    put(spool, 2)  # written to the deleted file: lost with it
    drain(spool, collector, stop=threading.Event(), stats=ShipStats(), sync=sync)
    assert spool.path.exists()
    assert spoolstate.flag(spool, "snapshot_wanted") == 1
    assert put(spool, 3) == 2  # above the collector's seq 1, chained from its digest
    assert payload(spool.pending()[-1][1]).prev_digest == collector.last_digest


def test_enrolling_a_key_the_collector_knows_starts_the_spool_at_its_position(
    tmp_path: Path,
) -> None:
    from agent.delivery_cli import adopt_position

    adopt_position(tmp_path, last_seq=7, last_digest=b"d7", agent_id=AGENT_ID, key=KEY)
    spool = spoolfile.open_spool(tmp_path / "spool.db", max_bytes=2**20)
    assert put(spool, 1) == 8
    assert payload(spool.pending()[0][1]).prev_digest == b"d7"
    assert spoolstate.flag(spool, "needs_resync") == 0
