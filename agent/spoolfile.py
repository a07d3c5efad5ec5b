"""Open the spool whatever state the file is in: a corrupt one is moved aside, not fatal.

A spool that cannot be read costs the events it held, never the agent: the file is renamed
with a timestamp for whoever wants to look at it, a fresh one takes its place, and the loss
is reported (a reset in the next health event, a resync and a full snapshot).
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from agent import spoolstate
from agent.errors import SpoolError
from agent.spool import Spool

log = logging.getLogger(__name__)


def open_spool(path: Path, *, max_bytes: int, now: datetime | None = None) -> Spool:
    """Spool.open, moving an unreadable file aside and starting afresh."""
    try:
        spool = Spool.open(path, max_bytes=max_bytes)
        _check(spool)
        return spool
    except SpoolError as exc:
        if not path.exists():
            raise  # nothing to move aside: a missing directory or no permission
        aside = move_aside(path, now or datetime.now(UTC))
        log.error("%s; moved it to %s and started a fresh spool", exc, aside)
    spool = Spool.open(path, max_bytes=max_bytes)
    spoolstate.set_flag(spool, "resets", 1)
    spoolstate.set_flag(spool, "snapshot_wanted", 1)
    return spool


def _check(spool: Spool) -> None:
    try:
        with spool.reading("check") as conn:
            (verdict,) = conn.execute("PRAGMA quick_check").fetchone()
    except SpoolError:
        spool.close()
        raise
    if verdict != "ok":
        spool.close()
        raise SpoolError(f"{spool.path}: spool is damaged: {verdict}")


def move_aside(path: Path, now: datetime) -> Path:
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while aside.exists():
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    os.replace(path, aside)
    for suffix in ("-wal", "-shm"):
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            os.replace(extra, aside.with_name(aside.name + suffix))
    return aside


def replaced(spool: Spool, inode: int) -> bool:
    """Whether the spool's file was deleted or replaced under the running agent."""
    try:
        return os.stat(spool.path).st_ino != inode
    except FileNotFoundError:
        return True


def inode(path: Path) -> int:
    return os.stat(path).st_ino


def start_over(spool: Spool) -> None:
    """The spool file vanished under the running agent: a fresh file, a reset reported."""
    log.error("%s was deleted or replaced while in use: starting a fresh spool", spool.path)
    spool.reopen()
    spoolstate.set_flag(spool, "resets", 1)
    spoolstate.set_flag(spool, "snapshot_wanted", 1)
