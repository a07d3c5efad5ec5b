"""What the agent does with the collector's answers: resync, quarantine, revocation, health.

A spool that has never shipped asks the collector where its chain stands and continues
above it; a reply listing refusals moves those envelopes to quarantine (refused is final);
a reply asking for a snapshot, or saying the collector is ahead of this spool, makes the
next pass a full snapshot so the inventory converges to what is on disk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent import spoolfile, spoolstate
from agent.spool import Spool

if TYPE_CHECKING:  # the shipper imports this module; its types are only for annotations
    from agent.shipper import Published, Publisher, ShipStats

log = logging.getLogger(__name__)


def _nothing() -> None:
    return None


@dataclass
class Resync:
    agent_id: str
    key: Ed25519PrivateKey
    on_snapshot: Callable[[], None] = _nothing  # wake the scanner for a full snapshot
    _inode: int | None = None

    def before_shipping(self, spool: Spool, shipper: Publisher) -> None:
        """A fresh spool learns the collector's position and continues above it."""
        if self._inode is not None and spoolfile.replaced(spool, self._inode):
            spoolfile.start_over(spool)
        self._inode = spoolfile.inode(spool.path)
        if not spoolstate.flag(spool, "needs_resync"):
            return
        position = shipper.position(self.agent_id)
        moved = spoolstate.rebase(
            spool,
            last_seq=position.last_seq,
            last_digest=position.last_digest,
            agent_id=self.agent_id,
            key=self.key,
        )
        if position.last_seq:
            log.warning(
                "spool is new or was reset: continuing above the collector's seq %d "
                "(%d pending envelopes re-signed) and sending a full snapshot",
                position.last_seq,
                moved,
            )
        self.on_snapshot()


def settle(
    spool: Spool,
    pending: Sequence[tuple[int, bytes]],
    result: Published,
    stats: ShipStats,
    *,
    sync: Resync | None,
    now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
) -> int:
    """Apply one reply: quarantine the refused, ack the rest; the number acked."""
    refused = [
        (pending[r.index][0], r.code, r.reason)
        for r in result.rejections
        if 0 <= r.index < len(pending)
    ]
    if refused:
        spoolstate.quarantine(spool, refused, now_ms())
        stats.refused.extend(f"seq {seq}: {reason}" for seq, _, reason in refused)
        log.warning(
            "collector refused %d envelopes for good (quarantined): %s",
            len(refused),
            "; ".join(reason for _, _, reason in refused[:5]),
        )
    acked = spool.ack(result.acked_seq)
    ahead = spoolstate.catch_up(spool, last_seq=result.last_seq, last_digest=result.last_digest)
    if ahead:
        log.warning(
            "the collector holds seq %d, past this spool: continuing from it", result.last_seq
        )
    if result.snapshot_requested or ahead:
        spoolstate.set_flag(spool, "snapshot_wanted", 1)
        if sync is not None:
            sync.on_snapshot()
    return acked + len(refused)


def mark_revoked(spool: Spool, stats: ShipStats, text: str) -> None:
    if not spoolstate.flag(spool, "revoked"):
        log.error("the collector revoked this agent (%s): no longer sending", text)
    spoolstate.set_flag(spool, "revoked", 1)
    stats.revoked = True
    stats.last_error = text


def health_fields(spool: Spool) -> dict[str, Any]:
    """agent.health.* about delivery, since the last health event."""
    refused, reasons = spoolstate.take_refused(spool)
    return {
        "agent.health.refused_envelopes": refused,
        "agent.health.refused_reasons": reasons,
        "agent.health.spool_level": spool.stats().level,
        "agent.health.spool_resets": spoolstate.take_flag(spool, "resets"),
    }


def status_fields(spool: Spool) -> dict[str, Any]:
    """For `shadowai-agent status`."""
    return {
        "revoked": bool(spoolstate.flag(spool, "revoked")),
        "needs_resync": bool(spoolstate.flag(spool, "needs_resync")),
        "spool_level": spool.stats().level,
        "refused_envelopes": [
            {"seq": seq, "code": code, "reason": reason}
            for seq, code, reason in spoolstate.quarantined(spool)[-20:]
        ],
    }
