"""Pieces the delivery fault tests share: a restartable collector, the API, a wire agent."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from gguf import GGUFWriter

from wire import envelope, tokens
from wire.envelope import raw_public_key
from wire.v1 import collector_pb2, collector_pb2_grpc
from wire.v1.events_pb2 import Envelope, Event, ModelFile, Payload

RULES = Path(__file__).resolve().parents[2] / "rules"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_gguf(path: Path, name: str = "e2e") -> Path:
    writer = GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_tensor("token_embd.weight", np.ones((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@dataclass
class Restartable:
    """A collector on fixed ports, so that agents find it again after a SIGKILL."""

    data_dir: Path
    database: str
    grpc_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    mtls_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[str] | None = None
    silent_after: str | None = None

    @property
    def grpc(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/"

    def start(self) -> None:
        cmd = [
            str(BIN / "shadowai-collector"),
            "serve",
            *("--data-dir", str(self.data_dir), "--database", self.database),
            *("--rules", str(RULES), "--grpc", self.grpc),
            *("--http", f"127.0.0.1:{self.http_port}"),
            *("--grpc-mtls", f"127.0.0.1:{self.mtls_port}"),
        ]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("grpc listening on"), line

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            finally:
                self.kill()

    def cli(self, *args: str, check: bool = True) -> str:
        cmd = [str(BIN / "shadowai-collector"), "--data-dir", str(self.data_dir)]
        cmd += ["--database", self.database, *args]
        return subprocess.run(cmd, check=check, capture_output=True, text=True).stdout.strip()


def running_collector(tmp_path: Path, database: str) -> Iterator[Restartable]:
    collector = Restartable(tmp_path / "collector", database)
    collector.start()
    try:
        yield collector
    finally:
        collector.stop()


class Api:
    def __init__(self, dashboard: str, token: str) -> None:
        self._base = dashboard
        self._headers = {"Authorization": f"Bearer {token}"}

    def items(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a listing: its pages one after another, following `next`."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            reply = httpx.get(self._base + path, headers=self._headers, params=query, timeout=20)
            assert reply.status_code == 200, reply.text
            body = reply.json()
            items += body["items"]
            cursor = body.get("next")
            if not cursor:
                return items

    def models(self) -> list[str]:
        return sorted(str(m["file.path"]) for m in self.items("api/v1/models"))


@dataclass
class WireAgent:
    """An agent spoken straight over gRPC, for envelopes no honest agent would send."""

    agent_id: str
    key: Ed25519PrivateKey
    stub: collector_pb2_grpc.CollectorStub
    seq: int = 0
    prev: bytes = b""

    @classmethod
    def enroll(cls, collector: Restartable, token_text: str) -> WireAgent:
        token = tokens.parse(token_text)
        ca = (collector.data_dir / "pki" / "ca.pem").read_bytes()
        key = Ed25519PrivateKey.generate()
        tls_key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wire")]))
            .sign(tls_key, hashes.SHA256())
        )
        channel = grpc.secure_channel(collector.grpc, grpc.ssl_channel_credentials(ca))
        reply = collector_pb2_grpc.CollectorStub(channel).Enroll(
            collector_pb2.EnrollRequest(
                token_id=token.token_id,
                token_secret=token.secret.encode(),
                public_key=raw_public_key(key.public_key()),
                host_name="wire",
                host_os_type="linux",
                csr_pem=csr.public_bytes(serialization.Encoding.PEM),
            ),
            timeout=20,
        )
        channel.close()
        tls_pem = tls_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        creds = grpc.ssl_channel_credentials(ca, tls_pem, reply.client_cert_pem)
        mtls = grpc.secure_channel(f"127.0.0.1:{reply.mtls_port}", creds)
        return cls(reply.agent_id, key, collector_pb2_grpc.CollectorStub(mtls))

    def envelope(self, path: str, *, ahead_ms: int = 0) -> Envelope:
        """The next link of the chain (the caller decides whether and when to send it)."""
        now = int(time.time() * 1000) + ahead_ms
        event = Event(timestamp_ms=now, action="discovered", model_file=ModelFile(path=path))
        self.seq += 1
        payload = Payload(
            agent_id=self.agent_id, seq=self.seq, prev_digest=self.prev, created_ms=now, event=event
        )
        env = envelope.seal(payload.SerializeToString(), self.key, key_id=self.agent_id)
        self.prev = envelope.digest(env)
        return env

    def publish(self, *envs: Envelope) -> collector_pb2.PublishResponse:
        reply: collector_pb2.PublishResponse = self.stub.Publish(
            collector_pb2.PublishRequest(envelopes=list(envs)), timeout=20
        )
        return reply
