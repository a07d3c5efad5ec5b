"""Envelopes: a round trip verifies; any change to type, payload, signature or key does not."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from wire import envelope
from wire.v1.events_pb2 import Envelope

KEY = Ed25519PrivateKey.generate()
KEY_ID = envelope.agent_id_for(KEY.public_key())


def test_round_trip_returns_the_exact_payload_bytes() -> None:
    env = envelope.seal(b"\x00payload\xff", KEY, key_id=KEY_ID)
    assert envelope.verify(env, KEY.public_key()) == b"\x00payload\xff"


def test_round_trip_survives_wire_serialization() -> None:
    env = envelope.seal(b"abc", KEY, key_id=KEY_ID)
    again = Envelope.FromString(env.SerializeToString())
    assert envelope.verify(again, KEY.public_key()) == b"abc"
    assert envelope.digest(again) == envelope.digest(env)


@given(st.binary(min_size=1, max_size=256), st.data())
def test_any_flipped_payload_bit_fails_verification(payload: bytes, data: st.DataObject) -> None:
    env = envelope.seal(payload, KEY, key_id=KEY_ID)
    index = data.draw(st.integers(0, len(payload) - 1))
    bit = data.draw(st.integers(0, 7))
    flipped = bytearray(payload)
    flipped[index] ^= 1 << bit
    env.payload = bytes(flipped)
    with pytest.raises(envelope.EnvelopeError) as refused:
        envelope.verify(env, KEY.public_key())
    assert refused.value.code == "signature"


def test_a_flipped_signature_byte_fails() -> None:
    env = envelope.seal(b"abc", KEY, key_id=KEY_ID)
    env.signature = bytes([env.signature[0] ^ 0x80]) + env.signature[1:]
    with pytest.raises(envelope.EnvelopeError):
        envelope.verify(env, KEY.public_key())


def test_a_wrong_key_fails() -> None:
    env = envelope.seal(b"abc", KEY, key_id=KEY_ID)
    with pytest.raises(envelope.EnvelopeError):
        envelope.verify(env, Ed25519PrivateKey.generate().public_key())


def test_the_payload_type_is_bound_into_the_signature() -> None:
    env = envelope.seal(b"abc", KEY, key_id=KEY_ID, payload_type="application/x-other")
    with pytest.raises(envelope.EnvelopeError) as refused:
        envelope.verify(env, KEY.public_key())
    assert refused.value.code == "payload_type"
    env.payload_type = envelope.PAYLOAD_TYPE
    with pytest.raises(envelope.EnvelopeError) as refused:
        envelope.verify(env, KEY.public_key())
    assert refused.value.code == "signature"


def test_pae_keeps_type_and_payload_boundaries_unambiguous() -> None:
    assert envelope.pae("ab", b"c") != envelope.pae("a", b"bc")


@given(st.binary(max_size=2048))
def test_arbitrary_bytes_as_an_envelope_never_crash_verification(raw: bytes) -> None:
    try:
        env = Envelope.FromString(raw)
    except Exception:
        return
    with pytest.raises(envelope.EnvelopeError):
        envelope.verify(env, KEY.public_key())


def test_oversized_payloads_are_refused_before_the_signature_check() -> None:
    env = envelope.seal(b"x" * (envelope.MAX_PAYLOAD_BYTES + 1), KEY, key_id=KEY_ID)
    with pytest.raises(envelope.EnvelopeError) as refused:
        envelope.verify(env, KEY.public_key())
    assert refused.value.code == "payload_size"
