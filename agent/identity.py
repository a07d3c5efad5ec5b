"""The agent's signing key and its enrollment record, kept in the data dir."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.errors import EnrollmentError
from wire.envelope import agent_id_for

KEY_FILE = "agent.key"
ENROLLMENT_FILE = "enrollment.json"


@dataclass(frozen=True)
class Enrollment:
    collector: str  # HOST:PORT
    agent_id: str
    group: str
    ca_pem: str | None  # None: plaintext gRPC, only ever chosen explicitly
    host_name: str
    publish_to: str | None = None  # HOST:PORT that takes the mTLS client certificate


def write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read, atomically."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_or_create_key(data_dir: Path) -> Ed25519PrivateKey:
    path = data_dir / KEY_FILE
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise EnrollmentError(f"{path}: not an Ed25519 private key")
        return key
    key = Ed25519PrivateKey.generate()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private(path, pem)
    return key


def agent_id(key: Ed25519PrivateKey) -> str:
    return agent_id_for(key.public_key())


def save_enrollment(data_dir: Path, enrollment: Enrollment) -> None:
    write_private(data_dir / ENROLLMENT_FILE, json.dumps(asdict(enrollment), indent=2).encode())


def load_enrollment(data_dir: Path) -> Enrollment:
    path = data_dir / ENROLLMENT_FILE
    try:
        raw = json.loads(path.read_text())
        return Enrollment(**raw)
    except FileNotFoundError:
        raise EnrollmentError(
            f"{path}: not enrolled; run `shadowai-agent enroll --collector HOST:PORT --token T`"
        ) from None
    except (ValueError, TypeError) as exc:
        raise EnrollmentError(f"{path}: unreadable enrollment record: {exc}") from None
