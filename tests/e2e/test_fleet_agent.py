"""The fleet simulator's agents: genuine chains, bad envelopes that are what they claim, the
agent's cadence over simulated time, and the boot / steady latency split."""

from __future__ import annotations

import random
from collections import Counter
from itertools import pairwise

import pytest

from agent.config import Settings
from bench.fleet_agent import Pending, SimAgent, inventory_size
from bench.fleet_cadence import Cadence, Due, Intervals
from bench.fleet_stats import Tally, latency_split, merge
from wire import envelope
from wire.envelope import EnvelopeError
from wire.v1.events_pb2 import Envelope, Payload


def _payload(env: Envelope) -> Payload:
    return Payload.FromString(env.payload)


def test_inventories_hold_a_few_to_a_few_hundred_models() -> None:
    sizes = [inventory_size(random.Random(i)) for i in range(500)]
    assert min(sizes) >= 3 and max(sizes) <= 300
    assert min(sizes) < 10 and max(sizes) > 100


def test_every_envelope_is_signed_by_the_agent_and_chains_to_the_one_before() -> None:
    agent = SimAgent(7, random.Random(7))
    agent.append(agent.snapshot())
    agent.append(agent.scan_pass())
    prev, seq = b"", 0
    for item in agent.pending:
        envelope.verify(item.envelope, agent.key.public_key())
        payload = _payload(item.envelope)
        assert (payload.agent_id, payload.seq, payload.prev_digest) == (
            agent.agent_id,
            seq + 1,
            prev,
        )
        prev, seq = envelope.digest(item.envelope), payload.seq
    assert seq == agent.seq == len(agent.pending)
    assert prev == agent.prev


def test_bad_envelopes_break_exactly_what_their_name_says() -> None:
    agent = SimAgent(1, random.Random(1))
    agent.append(agent.snapshot())
    acked = agent.settle(len(agent.pending))
    with pytest.raises(EnvelopeError):
        envelope.verify(agent.bad_envelope("forged"), agent.key.public_key())
    forked = _payload(agent.bad_envelope("forked"))
    assert forked.seq == agent.seq + 1 and forked.prev_digest != agent.prev
    replayed = agent.bad_envelope("replayed")
    envelope.verify(replayed, agent.key.public_key())
    old = {p.seq: p for p in acked}[_payload(replayed).seq]
    assert envelope.digest(replayed) != envelope.digest(old.envelope)
    assert _payload(replayed).prev_digest == old.prev
    assert agent.seq == len(acked) and agent.pending == []


# -- cadence: which events an agent emits over simulated time -----------------------------


HOUR = 3600.0


def _drive(cadence: Cadence, until: float) -> list[tuple[float, Due]]:
    """Step the schedule from one due time to the next, as the driver's loop does."""
    done: list[tuple[float, Due]] = []
    while (now := cadence.next_at()) <= until:
        done += [(now, due) for due in cadence.due(now)]
    return done


def test_the_cadence_is_the_agents_defaults_divided_by_the_speedup() -> None:
    assert Intervals.of(Settings()) == Intervals(
        model=300.0, snapshot=6 * HOUR, process=15.0, health=60.0
    )
    assert Intervals.of(Settings(), speedup=10).health == 6.0


def test_in_an_hour_an_agent_passes_every_5_min_scans_every_15_s_and_beats_every_minute() -> None:
    done = _drive(Cadence.after_boot(Intervals.of(Settings()), booted=100.0), 100.0 + HOUR)
    counts = Counter(due for _, due in done)
    assert counts == {Due.MODEL_PASS: 12, Due.PROCESS_SCAN: 240, Due.HEALTH: 60}
    health = [at for at, due in done if due is Due.HEALTH]
    assert health[0] == 160.0 and all(b - a == 60.0 for a, b in pairwise(health))


def test_every_six_hours_the_pass_and_the_scan_report_everything_again() -> None:
    done = _drive(Cadence.after_boot(Intervals.of(Settings()), booted=0.0), 13 * HOUR)
    snapshots = [(at, due) for at, due in done if due.name.endswith("SNAPSHOT")]
    assert snapshots == [
        (6 * HOUR, Due.MODEL_SNAPSHOT),
        (6 * HOUR, Due.PROCESS_SNAPSHOT),
        (12 * HOUR, Due.MODEL_SNAPSHOT),
        (12 * HOUR, Due.PROCESS_SNAPSHOT),
    ]


def test_a_fleet_already_up_beats_out_of_step_at_the_same_rates() -> None:
    intervals = Intervals.of(Settings())
    rng = random.Random(7)
    fleet = [Cadence.dephased(intervals, 50.0, rng) for _ in range(200)]
    firsts = [c.next_health for c in fleet]
    assert all(50.0 <= at < 110.0 for at in firsts)
    assert len({int(at) for at in firsts}) > 40  # not one burst in the same second
    done = _drive(fleet[0], 50.0 + HOUR)
    counts = Counter(due for _, due in done)
    assert counts == {Due.MODEL_PASS: 12, Due.PROCESS_SCAN: 240, Due.HEALTH: 60}


def test_a_late_loop_does_each_thing_once_and_counts_on_from_then() -> None:
    cadence = Cadence.after_boot(Intervals.of(Settings()), booted=0.0)
    assert cadence.due(1000.0) == [Due.MODEL_PASS, Due.PROCESS_SCAN, Due.HEALTH]
    assert (cadence.next_model, cadence.next_process, cadence.next_health) == (1300, 1015, 1060)
    assert cadence.due(1001.0) == []


def test_a_booted_agent_sends_health_each_minute_and_now_and_then_a_model_or_a_process() -> None:
    agent = SimAgent(3, random.Random(3), wall=lambda: 1_700_000_000.0)
    agent.append(agent.snapshot(), 0.0, boot=True)
    boot = len(agent.pending)
    assert boot == agent.models + len(agent.running) + 1
    cadence = Cadence.after_boot(Intervals.of(Settings()), booted=0.0)
    kinds: Counter[str] = Counter()
    for at, due in _drive(cadence, 6 * HOUR):
        events = agent.events_for(due)
        agent.append(events, at)
        kinds.update(f"{e.WhichOneof('body')}:{e.action}" for e in events)
    assert kinds["agent_health:snapshot"] == 360
    assert 0 < kinds["model_file:discovered"] < 72  # one pass in ten finds a new model
    assert 0 < kinds["inference_process:started"] + kinds["inference_process:stopped"] < 200
    # The six-hour pass reports every model and every running process once more.
    assert kinds["model_file:snapshot"] == agent.models
    assert kinds["inference_process:snapshot"] == len(agent.running)
    assert agent.seq == len(agent.pending) == boot + sum(kinds.values())


# -- latency split: boot, steady, settled ---------------------------------------------------


def test_envelopes_sealed_after_the_boot_snapshot_was_acknowledged_are_steady() -> None:
    agent = SimAgent(5, random.Random(5))
    agent.append(agent.snapshot(), 0.0, boot=True)
    boot = len(agent.pending)
    agent.append([agent.health_event()], 1.0)  # while the boot is in flight: neither
    agent.settle(boot - 1)
    assert not agent.booted
    agent.settle(2)
    assert agent.booted
    agent.append([agent.health_event()], 2.0)
    assert [(p.boot, p.steady) for p in agent.pending] == [(False, True)]


def _sealed(created: float, *, boot: bool = False, steady: bool = False) -> Pending:
    return Pending(Envelope(), created, 0, b"", boot, steady)


def test_the_split_reports_boot_steady_and_the_settled_window_apart() -> None:
    tally = Tally(agents=2, start=1000.0, end=1100.0)
    boot = [_sealed(0.0, boot=True), _sealed(1.0, boot=True), _sealed(3.0, boot=True)]
    tally.ack(boot, now=4.0, to_wall=1000.0)
    tally.booted_at.append(1004.0)
    tally.ack([_sealed(5.0)], now=9.0, to_wall=1000.0)  # sealed while booting: overall only
    tally.ack([_sealed(8.0, steady=True)], now=9.0, to_wall=1000.0)  # before the last boot
    tally.booted_at.append(1020.0)
    settled = [_sealed(30.0, steady=True), _sealed(40.0, steady=True), _sealed(60.0, steady=True)]
    tally.ack(settled, now=60.1, to_wall=1000.0)
    split = latency_split(tally)
    assert (split["boot_p50_ms"], split["boot_p99_ms"]) == (3000.0, 4000.0)
    assert (split["steady_p50_ms"], split["steady_p99_ms"]) == (20100.0, 30100.0)
    assert split["steady_events"] == 4
    assert split["all_booted_s"] == 20.0 and split["settled_window_s"] == 80.0
    assert (split["settled_p50_ms"], split["settled_p99_ms"]) == (20100.0, 30100.0)
    assert split["steady_events_per_s"] == 0.04  # 3 in the 80 s after every boot
    assert split["p99_ms"] == 30100.0 and len(tally.latencies) == 8


def test_without_every_agent_booted_there_is_no_settled_window() -> None:
    tally = Tally(agents=2, start=0.0, end=100.0)
    tally.ack([_sealed(1.0, boot=True)], now=2.0, to_wall=0.0)
    tally.booted_at.append(2.0)
    split = latency_split(tally)
    assert split["all_booted_s"] is None and split["settled_window_s"] == 0.0
    assert split["steady_events_per_s"] == 0.0 and split["settled_p99_ms"] == 0.0


def test_merged_processes_add_up_and_keep_the_earliest_start() -> None:
    one, two = Tally(agents=3, acked=5, start=10.0, end=70.0), Tally(agents=4, start=9.0)
    one.ack([_sealed(0.0, boot=True)], 1.0, 0.0)
    two.booted_at.append(12.0)
    total = merge([one, two])
    assert (total.agents, total.acked, total.start, total.end) == (7, 5, 9.0, 70.0)
    assert list(total.boot_latencies) == [1.0] and list(total.booted_at) == [12.0]
