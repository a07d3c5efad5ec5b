"""Sign and verify envelopes: Ed25519 over the exact payload bytes, with the payload type bound in.

The collector calls `verify` before it parses anything; the payload bytes come back only
after the signature checks out.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from wire.v1.events_pb2 import Envelope

PAYLOAD_TYPE = "application/vnd.shadowai.payload.v1+proto"
_PAE_LABEL = b"SHADOWAI-ENVELOPE-V1"
MAX_PAYLOAD_BYTES = 1 << 20


class EnvelopeError(Exception):
    """An envelope that must not be believed; `code` names the check that failed."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


def pae(payload_type: str, payload: bytes) -> bytes:
    """Pre-authentication encoding (as DSSE's): lengths make the boundaries unambiguous."""
    kind = payload_type.encode()
    return b" ".join(
        [_PAE_LABEL, str(len(kind)).encode(), kind, str(len(payload)).encode(), payload]
    )


def raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def agent_id_for(public_key: Ed25519PublicKey) -> str:
    """The agent's id is a digest of its public key, so an id cannot be claimed without the key."""
    return hashlib.sha256(raw_public_key(public_key)).hexdigest()[:32]


def digest(envelope: Envelope) -> bytes:
    """The hash-chain link: SHA-256 of exactly what was signed."""
    return hashlib.sha256(pae(envelope.payload_type, envelope.payload)).digest()


def seal(
    payload: bytes,
    private_key: Ed25519PrivateKey,
    *,
    key_id: str,
    payload_type: str = PAYLOAD_TYPE,
) -> Envelope:
    signature = private_key.sign(pae(payload_type, payload))
    return Envelope(payload_type=payload_type, payload=payload, signature=signature, key_id=key_id)


def verify(
    envelope: Envelope,
    public_key: Ed25519PublicKey,
    *,
    payload_type: str = PAYLOAD_TYPE,
) -> bytes:
    """Return the payload bytes only when the signature over type and payload is good."""
    if envelope.payload_type != payload_type:
        raise EnvelopeError("payload_type", f"expected {payload_type!r}")
    if len(envelope.payload) > MAX_PAYLOAD_BYTES:
        raise EnvelopeError("payload_size", f"{len(envelope.payload)} bytes is over the limit")
    if len(envelope.signature) != 64:
        raise EnvelopeError("signature", f"{len(envelope.signature)} bytes, expected 64")
    try:
        public_key.verify(envelope.signature, pae(envelope.payload_type, envelope.payload))
    except InvalidSignature:
        raise EnvelopeError("signature", "does not verify with the agent's key") from None
    return bytes(envelope.payload)
