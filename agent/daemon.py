"""Wire sensors -> detect -> spool -> shipper; every wait is interruptible by `stop`."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent import __version__
from agent.detect.model import FileObservation, model_file_fields
from agent.identity import write_private
from agent.inventory import Known, cached_sha256, diff
from agent.sensors.files import ScanStats, scan, sha256_file
from agent.shipper import Shipper, ShipStats, drain
from agent.spool import Spool
from wire.events import event_from_flat

log = logging.getLogger(__name__)
STATE_FILE = "inventory.json"

Scanner = Callable[..., Iterable[FileObservation]]


@dataclass(frozen=True)
class Settings:
    roots: tuple[Path, ...]
    excludes: tuple[str, ...] = ()
    interval: float = 300.0
    snapshot_interval: float = 6 * 3600.0
    hash_bytes_per_second: int | None = None


@dataclass(frozen=True)
class HostFacts:
    agent_id: str
    host_name: str
    os_type: str
    group: str


@dataclass
class PassResult:
    appended: int = 0
    models: int = 0
    stats: ScanStats = field(default_factory=ScanStats)


class Daemon:
    def __init__(
        self,
        *,
        settings: Settings,
        host: HostFacts,
        key: Ed25519PrivateKey,
        spool: Spool,
        state_dir: Path,
        stop: threading.Event,
        scanner: Scanner = scan,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._host = host
        self._key = key
        self._spool = spool
        self._state_path = state_dir / STATE_FILE
        self._stop = stop
        self._scanner = scanner
        self._clock = clock
        self._last_snapshot = 0.0
        self.ship_stats = ShipStats()

    def scan_pass(self, *, snapshot: bool | None = None) -> PassResult:
        """One pass over the roots: spool an event per change and one health event."""
        now = self._clock()
        if snapshot is None:
            snapshot = now - self._last_snapshot >= self._settings.snapshot_interval
        previous = self._load_state()
        result = PassResult()
        current: dict[str, Known] = {}
        for obs in self._scanner(
            list(self._settings.roots),
            excludes=list(self._settings.excludes),
            hash_contents=False,
            stop=self._stop,
            stats=result.stats,
        ):
            known = self._known(obs, previous.get(obs.path))
            if known is not None:
                current[obs.path] = known
        if self._stop.is_set():
            return result  # a partial pass must not report unseen files as removed
        for action, fields in diff(previous, current, snapshot=snapshot):
            self._append(fields, action, now)
            result.appended += 1
        self._append(self._health(result.stats), "snapshot", now)
        result.appended += 1
        result.models = len(current)
        self._save_state(current)
        if snapshot:
            self._last_snapshot = now
        return result

    def _known(self, obs: FileObservation, before: Known | None) -> Known | None:
        stat_key = (obs.device, obs.inode, obs.size, obs.mtime_ns)
        digest = cached_sha256(before, stat_key)
        if digest is None:
            digest = sha256_file(
                Path(obs.path),
                stop=self._stop,
                bytes_per_second=self._settings.hash_bytes_per_second,
            )
            if digest is None:
                return None
        fields = model_file_fields(replace(obs, sha256=digest))
        return Known(stat_key, fields)

    def _health(self, stats: ScanStats) -> dict[str, Any]:
        spool = self._spool.stats()
        fields: dict[str, Any] = {
            "event.dataset": "shadowai.agent_health",
            "agent.health.spool_bytes": spool.pending_bytes,
            "agent.health.dropped_events": self._spool.take_dropped(),
            "agent.health.files_scanned": stats.files_seen,
            "agent.health.permission_gaps": stats.permission_errors,
            "agent.health.permission_gap_paths": list(stats.errors[:20]),
        }
        fields.update(_process_usage())
        return fields

    def _append(self, fields: Mapping[str, Any], action: str, now: float) -> None:
        flat = {k: v for k, v in fields.items() if k != "event.dataset"}
        flat.update(
            {
                "event.dataset": fields.get("event.dataset", "shadowai.model_file"),
                "event.action": action,
                "agent.version": __version__,
                "host.name": self._host.host_name,
                "host.os.type": self._host.os_type,
                "host.group": self._host.group,
            }
        )
        event = event_from_flat(flat, timestamp_ms=int(now * 1000))
        self._spool.append(
            event, agent_id=self._host.agent_id, key=self._key, now_ms=int(now * 1000)
        )

    def _load_state(self) -> dict[str, Known]:
        try:
            raw = json.loads(self._state_path.read_text())
            return {path: Known.from_json(item) for path, item in raw.items()}
        except FileNotFoundError:
            return {}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # A damaged state file costs a re-hash and a round of "discovered", nothing more.
            log.warning("%s: ignoring unreadable inventory state: %s", self._state_path, exc)
            return {}

    def _save_state(self, current: Mapping[str, Known]) -> None:
        data = {path: known.to_json() for path, known in current.items()}
        write_private(self._state_path, json.dumps(data).encode())

    def run(self, shipper: Shipper, *, once: bool) -> bool:
        """Scan and ship; with `once`, one pass shipped and acked. False if stopped first."""
        if once:
            self.scan_pass(snapshot=True)
            return drain(self._spool, shipper, stop=self._stop, stats=self.ship_stats)
        shipping = threading.Thread(target=self._ship_forever, args=(shipper,), name="shipper")
        shipping.start()
        try:
            while not self._stop.is_set():
                result = self.scan_pass()
                log.info("pass: %d models, %d events spooled", result.models, result.appended)
                self._stop.wait(self._settings.interval)
        finally:
            self._stop.set()
            shipping.join()
        return True

    def _ship_forever(self, shipper: Shipper) -> None:
        while not self._stop.is_set():
            drain(self._spool, shipper, stop=self._stop, stats=self.ship_stats)
            self._stop.wait(1.0)


def _process_usage() -> dict[str, Any]:
    try:
        import psutil
    except ImportError:  # the agent extra is optional for `scan`; health then omits these
        return {}
    me = psutil.Process()
    return {
        "agent.health.rss_bytes": me.memory_info().rss,
        "agent.health.cpu_percent": me.cpu_percent(interval=None),
    }
