"""The fleet simulator's agents: genuine chains, and bad envelopes that are what they claim."""

from __future__ import annotations

import random

import pytest

from bench.fleet_agent import SimAgent, inventory_size
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
