"""An enrolled test agent speaking to a collector's gRPC service: the set-up the service
tests share."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector.server import Running
from collector.store import Store
from wire import envelope
from wire.envelope import raw_public_key
from wire.tokens import secret_digest
from wire.v1 import collector_pb2, collector_pb2_grpc
from wire.v1.events_pb2 import Envelope, Event, ModelFile, Payload


@dataclass
class Agent:
    key: Ed25519PrivateKey
    agent_id: str
    stub: collector_pb2_grpc.CollectorStub
    seq: int = 0
    prev: bytes = b""

    def envelope(
        self,
        *,
        seq: int | None = None,
        prev: bytes | None = None,
        created_ms: int | None = None,
        key: Ed25519PrivateKey | None = None,
        path: str = "/m/llama.gguf",
    ) -> Envelope:
        seq = self.seq + 1 if seq is None else seq
        event = Event(
            timestamp_ms=int(time.time() * 1000),
            action="discovered",
            host_name="lap",
            model_file=ModelFile(path=path, format="gguf", size=10),
        )
        payload = Payload(
            agent_id=self.agent_id,
            seq=seq,
            prev_digest=self.prev if prev is None else prev,
            created_ms=int(time.time() * 1000) if created_ms is None else created_ms,
            event=event,
        )
        env = envelope.seal(payload.SerializeToString(), key or self.key, key_id=self.agent_id)
        return env

    def publish(self, *envs: Envelope) -> collector_pb2.PublishResponse:
        response: collector_pb2.PublishResponse = self.stub.Publish(
            collector_pb2.PublishRequest(envelopes=list(envs)), timeout=10
        )
        return response

    def send_next(self) -> collector_pb2.PublishResponse:
        env = self.envelope()
        response = self.publish(env)
        self.seq, self.prev = self.seq + 1, envelope.digest(env)
        return response


def enroll(server: Running, store: Store) -> tuple[Agent, grpc.Channel]:
    """A fresh key enrolled with a one-use token over plaintext gRPC; close the channel."""
    store.add_enrollment_token(
        token_id="t1",
        secret_sha256=secret_digest(b"s"),
        group="g",
        created_at=datetime.now(UTC),
        expires_at=None,
    )
    channel = grpc.insecure_channel(server.grpc_address)
    stub = collector_pb2_grpc.CollectorStub(channel)
    key = Ed25519PrivateKey.generate()
    reply = stub.Enroll(
        collector_pb2.EnrollRequest(
            token_id="t1",
            token_secret=b"s",
            public_key=raw_public_key(key.public_key()),
            host_name="lap",
            host_os_type="linux",
            agent_version="test",
        ),
        timeout=10,
    )
    return Agent(key, reply.agent_id, stub), channel
