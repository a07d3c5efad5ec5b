"""The gRPC client: enroll once, then deliver spooled envelopes until the collector acks them."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import grpc

from agent.backoff import delay_for
from agent.errors import AgentError, EnrollmentError
from agent.spool import Spool
from wire import ACKED_SEQ_METADATA
from wire.v1 import collector_pb2, collector_pb2_grpc
from wire.v1.events_pb2 import Envelope

log = logging.getLogger(__name__)

# Codes after which sending the same envelopes again cannot succeed.
FATAL = frozenset(
    {
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)


class ShipError(AgentError):
    """The collector refused envelopes for a reason a retry will not fix."""


@dataclass(frozen=True)
class Published:
    acked_seq: int
    rejections: Sequence[str] = ()


@dataclass
class ShipStats:
    sent: int = 0
    acked: int = 0
    failures: int = 0
    last_error: str = ""
    refused: list[str] = field(default_factory=list)


def open_channel(target: str, ca_pem: bytes | None) -> grpc.Channel:
    options = [("grpc.max_send_message_length", 16 * 2**20)]
    if ca_pem is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(ca_pem), options=options)


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
        """Send one batch; ALREADY_EXISTS means the collector holds them (a lost ack)."""
        request = collector_pb2.PublishRequest(
            envelopes=[Envelope.FromString(e) for e in envelopes]
        )
        try:
            response: collector_pb2.PublishResponse = self._stub.Publish(
                request, timeout=self._timeout
            )
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.ALREADY_EXISTS:
                return Published(acked_seq=_acked_from_trailer(exc))
            if code in FATAL:
                raise ShipError(f"{code.name}: {exc.details()}") from None
            raise
        return Published(response.acked_seq, [r.reason for r in response.rejections])


def _acked_from_trailer(exc: grpc.RpcError) -> int:
    for key, value in exc.trailing_metadata() or ():
        if key == ACKED_SEQ_METADATA and str(value).isdigit():
            return int(value)
    return 0


def drain(
    spool: Spool,
    shipper: Shipper,
    *,
    stop: threading.Event,
    stats: ShipStats,
    batch: int = 500,
    rand: Callable[[], float] = random.random,
    until_empty: bool = True,
) -> bool:
    """Ship until the spool is empty (True) or stop is set (False); every wait is interruptible."""
    attempt = 0
    while not stop.is_set():
        pending = spool.pending(limit=batch)
        if not pending:
            return True
        try:
            result = shipper.publish([env for _, env in pending])
        except (grpc.RpcError, ShipError) as exc:
            stats.failures += 1
            stats.last_error = str(exc) if isinstance(exc, ShipError) else _rpc_text(exc)
            log.warning("publish failed (attempt %d): %s", attempt + 1, stats.last_error)
            stop.wait(delay_for(attempt, retry_after=None, rand=rand))
            attempt += 1
            continue
        attempt = 0
        stats.sent += len(pending)
        stats.acked += spool.ack(result.acked_seq)
        if result.rejections:
            stats.refused.extend(result.rejections)
            log.warning("collector refused: %s", "; ".join(result.rejections))
        if not until_empty:
            return True
    return False


def _rpc_text(exc: grpc.RpcError) -> str:
    try:
        return f"{exc.code().name}: {exc.details()}"
    except AttributeError:
        return str(exc)
