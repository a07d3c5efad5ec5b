"""The chain check accepts the next link, records gaps and names every refusal."""

from __future__ import annotations

import pytest

from collector.chain import NOTHING_KNOWN, ChainState, Known, check_link
from collector.errors import RefusedEnvelope
from wire.v1.events_pb2 import Event, ModelFile, Payload

NOW = 1_800_000_000_000
START = ChainState(last_seq=3, last_digest=b"d3")


def payload(
    seq: int, prev: bytes = b"d3", created: int = NOW, action: str = "discovered"
) -> Payload:
    event = Event(timestamp_ms=created, action=action, model_file=ModelFile(path="/m"))
    return Payload(agent_id="a1", seq=seq, prev_digest=prev, created_ms=created, event=event)


def refusal(p: Payload, agent_id: str = "a1", known: Known = NOTHING_KNOWN) -> str:
    with pytest.raises(RefusedEnvelope) as refused:
        check_link(p, digest=b"d", agent_id=agent_id, state=START, now_ms=NOW, known=known)
    return refused.value.code


def test_the_next_link_advances_the_chain() -> None:
    link = check_link(payload(4), digest=b"d4", agent_id="a1", state=START, now_ms=NOW)
    assert link.state == ChainState(4, b"d4")
    assert link.gap is None


def test_a_jump_is_accepted_with_the_gap_it_leaves() -> None:
    link = check_link(payload(9, prev=b"?"), digest=b"d9", agent_id="a1", state=START, now_ms=NOW)
    assert link.gap == (4, 8)


def test_an_old_seq_with_the_digest_we_hold_is_a_duplicate() -> None:
    known = Known({3: b"d"})
    link = check_link(payload(3), digest=b"d", agent_id="a1", state=START, now_ms=NOW, known=known)
    assert link.duplicate and link.state == START


def test_an_old_seq_with_another_digest_is_a_second_chain() -> None:
    with pytest.raises(RefusedEnvelope) as refused:
        check_link(
            payload(3), digest=b"x", agent_id="a1", state=START, now_ms=NOW, known=Known({3: b"d"})
        )
    assert refused.value.code == "replay_mismatch"


def test_an_old_seq_never_received_fills_in_late_when_it_chains() -> None:
    known = Known({1: b"d1"})
    link = check_link(
        payload(2, prev=b"d1"), digest=b"d2", agent_id="a1", state=START, now_ms=NOW, known=known
    )
    assert link.late and link.state == START
    with pytest.raises(RefusedEnvelope) as refused:
        check_link(
            payload(2, prev=b"zz"),
            digest=b"d2",
            agent_id="a1",
            state=START,
            now_ms=NOW,
            known=known,
        )
    assert refused.value.code == "fork"


def test_a_jump_that_descends_from_a_refused_fork_is_a_fork() -> None:
    known = Known({}, forks={b"f5"})
    assert refusal(payload(9, prev=b"f5"), known=known) == "fork"


def test_a_content_refusal_still_carries_the_link_so_the_chain_moves() -> None:
    with pytest.raises(RefusedEnvelope) as refused:
        check_link(
            payload(4, created=NOW + 3600_000), digest=b"d4", agent_id="a1", state=START, now_ms=NOW
        )
    assert refused.value.code == "clock"
    assert refused.value.link.state == ChainState(4, b"d4")


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
