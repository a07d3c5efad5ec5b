"""Stamp, sign and spool events: the one place an event leaves the pipeline for the spool."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.pipeline import HostFacts, stamp
from agent.spool import Spool
from wire.events import event_from_flat


class Outbox:
    """Called with (fields, action); appends the signed event to the spool."""

    def __init__(
        self,
        *,
        spool: Spool,
        key: Ed25519PrivateKey,
        host: HostFacts,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spool = spool
        self._key = key
        self._host = host
        self._clock = clock

    def __call__(self, fields: Mapping[str, Any], action: str) -> None:
        now = self._clock()
        now_ms = int(now * 1000)
        event = event_from_flat(stamp(fields, action, self._host, now), timestamp_ms=now_ms)
        self.spool.append(event, agent_id=self._host.agent_id, key=self._key, now_ms=now_ms)
