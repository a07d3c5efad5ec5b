"""The gRPC client: enroll once, then deliver spooled envelopes until the collector acks them.

Every reply says where the collector's copy of the chain stands; `drain` hands that to
agent.resync, quarantines what the collector refused for good, and waits (interruptibly, as
long as the collector's pushback asks) when it cannot be reached.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import grpc

from agent import resync, spoolstate
from agent.backoff import delay_for
from agent.errors import AgentError, EnrollmentError
from agent.spool import Spool
from wire import RETRY_PUSHBACK_METADATA, REVOKED_METADATA
from wire.v1 import collector_pb2, collector_pb2_grpc
from wire.v1.events_pb2 import Envelope

log = logging.getLogger(__name__)


class ShipError(AgentError):
    """The collector refused a whole request; `retry_after` is its hint in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Revoked(ShipError):
    """The collector revoked this agent's key: sending again cannot help."""


@dataclass(frozen=True)
class Rejected:
    index: int
    seq: int
    code: str
    reason: str


@dataclass(frozen=True)
class Published:
    acked_seq: int
    rejections: Sequence[Rejected] = ()
    last_seq: int = 0
    last_digest: bytes = b""
    snapshot_requested: bool = False


@dataclass
class ShipStats:
    sent: int = 0
    acked: int = 0
    failures: int = 0
    last_error: str = ""
    refused: list[str] = field(default_factory=list)
    revoked: bool = False
    gave_up: bool = False


@dataclass(frozen=True)
class ClientTls:
    """The mTLS client certificate and key the collector issued at enrollment."""

    cert_pem: bytes
    key_pem: bytes


def open_channel(
    target: str, ca_pem: bytes | None, client: ClientTls | None = None
) -> grpc.Channel:
    options = [("grpc.max_send_message_length", 16 * 2**20)]
    if ca_pem is None:
        return grpc.insecure_channel(target, options=options)
    if client is None:
        credentials = grpc.ssl_channel_credentials(ca_pem)
    else:
        credentials = grpc.ssl_channel_credentials(ca_pem, client.key_pem, client.cert_pem)
    return grpc.secure_channel(target, credentials, options=options)


class Publisher(Protocol):
    """What drain needs of a Shipper; tests pass a small fake."""

    def publish(self, envelopes: Sequence[bytes]) -> Published: ...

    def position(self, agent_id: str) -> Published: ...


class Shipper:
    def __init__(self, channel: grpc.Channel, *, timeout: float = 15.0) -> None:
        self._channel = channel
        self._stub = collector_pb2_grpc.CollectorStub(channel)
        self._timeout = timeout

    def close(self) -> None:
        self._channel.close()

    def enroll(self, request: collector_pb2.EnrollRequest) -> collector_pb2.EnrollResponse:
        try:
            response: collector_pb2.EnrollResponse = self._stub.Enroll(
                request, timeout=self._timeout, wait_for_ready=False
            )
        except grpc.RpcError as exc:
            raise EnrollmentError(
                f"enrollment refused: {exc.code().name}: {exc.details()}"
            ) from None
        return response

    def publish(self, envelopes: Sequence[bytes]) -> Published:
        """Send one batch; every envelope comes back acked or rejected for good."""
        request = collector_pb2.PublishRequest(
            envelopes=[Envelope.FromString(e) for e in envelopes]
        )
        return self._call(request)

    def position(self, agent_id: str) -> Published:
        """Ask where the collector's copy of this agent's chain stands (sends nothing)."""
        return self._call(collector_pb2.PublishRequest(agent_id=agent_id))

    def _call(self, request: collector_pb2.PublishRequest) -> Published:
        try:
            response: collector_pb2.PublishResponse = self._stub.Publish(
                request, timeout=self._timeout
            )
        except grpc.RpcError as exc:
            raise _ship_error(exc) from None
        return Published(
            response.acked_seq,
            [Rejected(r.index, r.seq, r.code, r.reason) for r in response.rejections],
            response.last_seq,
            bytes(response.last_digest),
            response.snapshot_requested,
        )


def _ship_error(exc: grpc.RpcError) -> ShipError:
    code, details = _code(exc), _details(exc)
    trailers = dict(_trailers(exc))
    text = f"{code.name if code else 'UNKNOWN'}: {details}"
    if code == grpc.StatusCode.PERMISSION_DENIED and trailers.get(REVOKED_METADATA):
        return Revoked(text)
    hint = trailers.get(RETRY_PUSHBACK_METADATA, "")
    retry_after = int(hint) / 1000 if hint.isdigit() else None
    return ShipError(text, retry_after=retry_after)


def _code(exc: grpc.RpcError) -> grpc.StatusCode | None:
    try:
        code: grpc.StatusCode = exc.code()
    except AttributeError:
        return None
    return code


def _details(exc: grpc.RpcError) -> str:
    try:
        return str(exc.details())
    except AttributeError:
        return str(exc)


def _trailers(exc: grpc.RpcError) -> list[tuple[str, str]]:
    try:
        return [(str(k), str(v)) for k, v in exc.trailing_metadata() or ()]
    except AttributeError:
        return []


def drain(
    spool: Spool,
    shipper: Publisher,
    *,
    stop: threading.Event,
    stats: ShipStats,
    batch: int = 500,
    rand: Callable[[], float] = random.random,
    until_empty: bool = True,
    sync: resync.Resync | None = None,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Ship until the spool is empty (True), or stop is set, the agent is revoked, or the
    monotonic `deadline` passes (False); every wait is interruptible."""
    attempt = 0
    while not stop.is_set():
        if stats.revoked or spoolstate.flag(spool, "revoked"):
            stats.revoked = True
            return False
        if deadline is not None and clock() >= deadline:
            stats.gave_up = True
            return False
        try:
            if sync is not None:
                sync.before_shipping(spool, shipper)
            pending = spool.pending(limit=batch)
            if not pending:
                return True
            result = shipper.publish([env for _, env in pending])
        except Revoked as exc:
            resync.mark_revoked(spool, stats, str(exc))
            return False
        except ShipError as exc:
            stats.failures += 1
            stats.last_error = str(exc)
            log.warning("publish failed (attempt %d): %s", attempt + 1, exc)
            wait = delay_for(attempt, retry_after=exc.retry_after, rand=rand)
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - clock()))
            stop.wait(wait)
            attempt += 1
            continue
        attempt = 0
        stats.sent += len(pending)
        stats.acked += resync.settle(spool, pending, result, stats, sync=sync)
        if not until_empty:
            return True
    return False
