"""The chain check accepts the next link, records gaps and names every refusal."""

from __future__ import annotations

import pytest

from collector.chain import ChainState, check_link
from collector.errors import RefusedEnvelope
from wire.v1.events_pb2 import Event, ModelFile, Payload

NOW = 1_800_000_000_000
START = ChainState(last_seq=3, last_digest=b"d3")


def payload(
    seq: int, prev: bytes = b"d3", created: int = NOW, action: str = "discovered"
) -> Payload:
    event = Event(timestamp_ms=created, action=action, model_file=ModelFile(path="/m"))
    return Payload(agent_id="a1", seq=seq, prev_digest=prev, created_ms=created, event=event)


def refusal(p: Payload, agent_id: str = "a1") -> str:
    with pytest.raises(RefusedEnvelope) as refused:
        check_link(p, digest=b"d", agent_id=agent_id, state=START, now_ms=NOW)
    return refused.value.code


def test_the_next_link_advances_the_chain() -> None:
    link = check_link(payload(4), digest=b"d4", agent_id="a1", state=START, now_ms=NOW)
    assert link.state == ChainState(4, b"d4")
    assert link.gap is None


def test_a_jump_is_accepted_with_the_gap_it_leaves() -> None:
    link = check_link(payload(9, prev=b"?"), digest=b"d9", agent_id="a1", state=START, now_ms=NOW)
    assert link.gap == (4, 8)


@pytest.mark.parametrize("seq", [1, 3])
def test_old_sequence_numbers_are_replays(seq: int) -> None:
    assert refusal(payload(seq)) == "replay"


def test_a_next_link_that_does_not_chain_is_a_fork() -> None:
    assert refusal(payload(4, prev=b"other")) == "fork"


def test_a_payload_naming_another_agent_is_refused() -> None:
    assert refusal(payload(4), agent_id="a2") == "identity"


@pytest.mark.parametrize("created", [NOW + 10 * 60 * 1000, NOW - 40 * 24 * 3600 * 1000])
def test_clocks_outside_the_window_are_refused(created: int) -> None:
    assert refusal(payload(4, created=created)) == "clock"


def test_an_event_without_a_body_or_with_an_unknown_action_is_malformed() -> None:
    assert refusal(payload(4, action="exploded")) == "malformed"
    empty = Payload(agent_id="a1", seq=4, prev_digest=b"d3", created_ms=NOW)
    assert refusal(empty) == "malformed"
