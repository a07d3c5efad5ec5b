"""Pure delivery pieces of the collector: rate limits, collector events, client certificates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given
from hypothesis import strategies as st

from collector import notes
from collector.batch import Lookups, check_batch
from collector.pki import CsrError, ensure_pki, issue_client_cert
from collector.ratelimit import Buckets, peer_host
from collector.store import AgentRecord, AgentState
from wire import envelope
from wire.v1.events_pb2 import Event, ModelFile, Payload

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)
AGENT = AgentState(
    AgentRecord("a1", b"k" * 32, "lap", "linux", "eng", "t", NOW), 5, b"d", False, NOW
)


def test_a_bucket_allows_a_burst_then_says_how_long_to_wait() -> None:
    buckets = Buckets(per_second=0.5, burst=2)
    assert [buckets.take("1.2.3.4", 0.0) for _ in range(2)] == [0.0, 0.0]
    assert buckets.take("1.2.3.4", 0.0) == pytest.approx(2.0)
    assert buckets.take("5.6.7.8", 0.0) == 0.0  # another address has its own bucket
    assert buckets.take("1.2.3.4", 2.0) == 0.0


def test_buckets_forget_the_oldest_address_when_full() -> None:
    buckets = Buckets(per_second=1, burst=1, max_keys=2)
    for t, key in enumerate(["a", "b", "c"]):
        buckets.take(key, float(t))
    assert buckets.take("a", 3.0) == 0.0 and len(buckets._state) == 2


@pytest.mark.parametrize(
    ("peer", "host"),
    [("ipv4:10.0.0.1:5555", "10.0.0.1"), ("ipv6:[::1]:80", "::1"), ("unix:/tmp/s", "unix:/tmp/s")],
)
def test_peer_host(peer: str, host: str) -> None:
    assert peer_host(peer) == host


@given(st.text(max_size=80))
def test_peer_host_never_fails(peer: str) -> None:
    assert isinstance(peer_host(peer), str)


def test_a_chain_refusal_while_the_chain_moves_is_a_cloned_identity() -> None:
    refusal = {"replay_mismatch": (2, [3, 4], "replay_mismatch: seq 3")}
    (note,) = notes.for_refusals(AGENT, refusal, {}, accepted_now=False, now=NOW)
    assert note.reason == "cloned_identity"
    assert note.fields["agent.id"] == "a1" and note.fields["shadowai.refusal.count"] == 2
    old = AgentState(AGENT.record, 5, b"d", False, NOW - dt.timedelta(days=3))
    (quiet,) = notes.for_refusals(old, refusal, {}, accepted_now=False, now=NOW)
    assert quiet.reason == "replay_mismatch"


def test_refusal_events_carry_the_running_total() -> None:
    refusal = {"signature": (1, [0], "signature: bad")}
    (note,) = notes.for_refusals(
        AGENT, refusal, {"refused.signature": 2}, accepted_now=True, now=NOW
    )
    assert (note.reason, note.fields["shadowai.refusal.total"]) == ("bad_signature", 3)


def csr(key: ec.EllipticCurvePrivateKey, name: str = "whatever") -> bytes:
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM)


def test_a_client_certificate_names_the_agent_not_the_request(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, names=["localhost"], now=NOW)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = issue_client_cert(pki.ca_pem, pki.ca_key_pem, csr(key, "admin"), "agent-7", NOW)
    cert = x509.load_pem_x509_certificate(pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "agent-7"
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ca = x509.load_pem_x509_certificate(pki.ca_pem)
    cert.verify_directly_issued_by(ca)


def test_requests_that_are_not_ours_to_sign_are_refused(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, names=["localhost"], now=NOW)
    with pytest.raises(CsrError):
        issue_client_cert(pki.ca_pem, pki.ca_key_pem, b"not a csr", "a", NOW)
    ed_csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .sign(ed25519.Ed25519PrivateKey.generate(), None)
    )
    with pytest.raises(CsrError, match="EC key"):
        issue_client_cert(
            pki.ca_pem, pki.ca_key_pem, ed_csr.public_bytes(serialization.Encoding.PEM), "a", NOW
        )


@given(st.binary(max_size=600))
def test_arbitrary_bytes_as_a_csr_are_refused_cleanly(data: bytes) -> None:
    with pytest.raises(CsrError):
        issue_client_cert(b"", b"", data, "a", NOW)


BATCH_KEY = ed25519.Ed25519PrivateKey.generate()
BATCH_AGENT = AgentState(
    AgentRecord(
        envelope.agent_id_for(BATCH_KEY.public_key()),
        envelope.raw_public_key(BATCH_KEY.public_key()),
        "lap",
        "linux",
        "g",
        "t",
        NOW,
    ),
    3,
    b"d3",
    False,
    NOW,
)
NO_LOOKUPS = Lookups(held=lambda seqs: {}, forks=lambda above: set())


@given(st.lists(st.tuples(st.binary(max_size=300), st.booleans()), min_size=1, max_size=8))
def test_any_signed_bytes_end_accepted_or_refused_never_raising(
    items: list[tuple[bytes, bool]],
) -> None:
    envs = []
    for data, signed in items:
        env = envelope.seal(data, BATCH_KEY, key_id=BATCH_AGENT.record.agent_id)
        if not signed:
            env.signature = bytes(64)
        envs.append(env)
    batch = check_batch(BATCH_AGENT, envs, lookups=NO_LOOKUPS, now=NOW, trusted=dict)
    assert len(batch.events) + batch.duplicates + len(batch.rejections) == len(envs)
    assert {r.index for r in batch.rejections} <= set(range(len(envs)))


links = st.tuples(
    st.integers(min_value=0, max_value=9),
    st.sampled_from([b"", b"d3", b"x" * 32]),
    st.integers(min_value=-(40 * 86400 * 1000), max_value=3600 * 1000),
    st.sampled_from(["discovered", "snapshot", "exploded"]),
)


@given(st.lists(links, min_size=1, max_size=8))
def test_any_sequence_of_links_is_decided_envelope_by_envelope(
    items: list[tuple[int, bytes, int, str]],
) -> None:
    now_ms = int(NOW.timestamp() * 1000)
    envs = []
    for seq, prev, skew, action in items:
        event = Event(timestamp_ms=now_ms, action=action, model_file=ModelFile(path="/m"))
        payload = Payload(
            agent_id=BATCH_AGENT.record.agent_id,
            seq=seq,
            prev_digest=prev,
            created_ms=now_ms + skew,
            event=event,
        )
        envs.append(
            envelope.seal(
                payload.SerializeToString(), BATCH_KEY, key_id=BATCH_AGENT.record.agent_id
            )
        )
    batch = check_batch(BATCH_AGENT, envs, lookups=NO_LOOKUPS, now=NOW, trusted=dict)
    assert len(batch.events) + batch.duplicates + len(batch.rejections) == len(envs)
    assert batch.state.last_seq >= BATCH_AGENT.last_seq
    assert len({e.seq for e in batch.events}) == len(batch.events)  # never stored twice
