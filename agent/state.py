"""What the agent keeps between runs and shows to `status`: the ledger's state file, and the
status file the running daemon refreshes (heartbeat, last contact, last error, pause)."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.atomic import write_private

if TYPE_CHECKING:  # the supervisor reads the status file and must not load every parser
    from agent.inventory import Known, Ledger

log = logging.getLogger(__name__)

STATE_FILE = "inventory.json"
STATUS_FILE = "status.json"
SAVE_EVERY = 5.0  # seconds; the state file is a courtesy to the next start, not a journal


class StateFile:
    """The ledger of reported models and the file it is saved to; one lock guards both."""

    def __init__(
        self,
        path: Path,
        *,
        save_every: float = SAVE_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._save_every = save_every
        self._clock = clock
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._ledger: Ledger | None = None
        self._dirty = False
        self._saved_at = 0.0

    @contextmanager
    def ledger(self) -> Iterator[Ledger]:
        """The ledger, read from the file on first use, held under the lock."""
        with self._lock:
            if self._ledger is None:
                from agent.inventory import Ledger

                self._ledger = Ledger(load_state(self.path))
            yield self._ledger

    def changed(self) -> None:
        self._dirty = True

    def save(self, *, force: bool = False) -> None:
        """Write the ledger if it changed and SAVE_EVERY has passed (or now, with force)."""
        with self._save_lock:
            if not self._dirty and not force:
                return
            if not force and self._clock() - self._saved_at < self._save_every:
                return
            with self.ledger() as ledger:
                current = ledger.state()
                self._dirty = False
            data = {path: known.to_json() for path, known in current.items()}
            write_private(self.path, json.dumps(data).encode())
            self._saved_at = self._clock()


def load_state(path: Path) -> dict[str, Known]:
    from agent.inventory import Known

    try:
        raw = json.loads(path.read_text())
        return {name: Known.from_json(item) for name, item in raw.items()}
    except FileNotFoundError:
        return {}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        # A damaged state file costs a re-hash and a round of "discovered", nothing more.
        log.warning("%s: ignoring unreadable inventory state: %s", path, exc)
        return {}


@dataclass
class Status:
    """What the running daemon says about itself, for `shadowai-agent status`."""

    pid: int = 0
    started_at: float = 0.0
    heartbeat_at: float = 0.0
    last_contact_at: float | None = None  # the collector last answered
    last_error: str = ""
    last_error_at: float | None = None
    paused: str = ""
    watchdog: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def write_status(path: Path, status: Status) -> None:
    write_private(path, json.dumps(asdict(status), sort_keys=True).encode())


def read_status(path: Path) -> Status | None:
    try:
        raw = json.loads(path.read_text())
        return Status(**raw)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        log.warning("%s: unreadable status: %s", path, exc)
        return None


def running(
    status: Status | None, *, now: float, alive: Callable[[int], bool], stale: float
) -> bool:
    """Whether a daemon is running: its process is alive and its heartbeat is recent."""
    if status is None or status.pid <= 0:
        return False
    return alive(status.pid) and now - status.heartbeat_at <= stale


def summary(
    status: Status | None, *, now: float, alive: Callable[[int], bool], stale: float
) -> Mapping[str, Any]:
    """The status file as `status` prints it: running or not, and what the daemon last said."""
    if status is None:
        return {"running": False}
    return {
        "running": running(status, now=now, alive=alive, stale=stale),
        "pid": status.pid,
        "heartbeat_age_seconds": round(now - status.heartbeat_at, 1),
        "last_contact": _iso(status.last_contact_at),
        "last_error": status.last_error or None,
        "last_error_at": _iso(status.last_error_at),
        "paused": status.paused or None,
        "watchdog": status.watchdog,
    }


def _iso(when: float | None) -> str | None:
    if when is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def pid_alive(pid: int) -> bool:
    try:
        import psutil
    except ImportError:  # without the agent extra, fall back to signal 0 (POSIX only)
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    return bool(psutil.pid_exists(pid))


class StatusBoard:
    """The running daemon's status, rewritten on every beat for `status` to read."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._clock = clock
        self.status = Status(pid=os.getpid(), started_at=clock())
        self._seen = (0, 0)  # ShipStats (acked + sent, failures) at the previous beat

    def delivery(self, *, sent: int, failures: int, last_error: str) -> None:
        """Fold the shipper's counters in: progress means the collector answered."""
        now = self._clock()
        before_sent, before_failures = self._seen
        if failures > before_failures and last_error:
            self.status.last_error, self.status.last_error_at = last_error, now
        if sent > before_sent:
            self.status.last_contact_at = now
        self._seen = (sent, failures)

    def beat(self, **changes: Any) -> None:
        for name, value in changes.items():
            setattr(self.status, name, value)
        self.status.heartbeat_at = self._clock()
        try:
            write_status(self._path, self.status)
        except OSError as exc:  # a full disk must not stop the daemon; status is a courtesy
            log.warning("%s: cannot write status: %s", self._path, exc)

    def remove(self) -> None:
        """On a clean exit: `status` then says not running at once."""
        with suppress(OSError):
            self._path.unlink()
