"""Wire sensors -> detect -> spool -> shipper; every wait is interruptible by `stop`.

Full passes, watcher batches and the background hasher all go through `_apply`/`_record`, so
the same identify -> fields -> diff pipeline decides what every event says.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent import __version__, platform
from agent.catalog import (
    Stores,
    catalog_models,
    load_stores,
    model_fields,
    origin_fields,
    safe_stores,
)
from agent.config import Settings
from agent.detect.groups import metadata_limit
from agent.detect.model import FileObservation
from agent.hashcache import CACHE_FILE, CachingHasher, HashCache
from agent.identity import write_private
from agent.inventory import Known, Ledger, Reported, StatKey, cached_sha256
from agent.process_loop import ProcessLoop, Sensor
from agent.resync import Resync, health_fields  # delivery: resync, refusals, spool health
from agent.sensors import priority
from agent.sensors.files import ScanStats, direct_files, scan
from agent.sensors.gpu import GpuSource, NoGpu
from agent.sensors.watch import Runnable, Watcher, WatcherFactory
from agent.shipper import Shipper, ShipStats, drain
from agent.spool import Spool
from agent.spoolstate import take_flag  # delivery: a snapshot asked for by the collector
from wire.events import event_from_flat

__all__ = ["Daemon", "HostFacts", "PassResult", "Settings"]

log = logging.getLogger(__name__)
STATE_FILE = "inventory.json"
SAVE_EVERY = 5.0  # seconds; the state file is a courtesy to the next start, not a journal
MAX_HASH_QUEUE = 100_000
# Names that make a folder's files a set: shard indexes, numbered splits, ONNX external data,
# downloads in progress.
_SET_HINT = re.compile(
    r"\.index\.json$|-\d{5}-of-\d{5}\.|\.onnx(_data|\.data)?$|\.(part|partial|incomplete|tmp|"
    r"crdownload|download|downloadinprogress)$|^incomplete-|-partial(-\d+)?$",
    re.IGNORECASE,
)

Scanner = Callable[..., Iterable[FileObservation]]


class Hasher(Protocol):
    """sha256 of one version of a file (None: stopped, or the file changed meanwhile)."""

    def cached(self, key: StatKey) -> str | None: ...

    def __call__(self, path: str, key: StatKey, fingerprint: str | None = None) -> str | None: ...


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


def _lower_this_thread() -> None:
    priority.lower_current_thread(priority.for_os(platform.current().os_type))


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
        hasher: Hasher | None = None,
        watcher_factory: WatcherFactory = Watcher,
        stores: Callable[[], Stores] = load_stores,
        lower_priority: Callable[[], object] = _lower_this_thread,
        process_sensor: Sensor | None = None,
        gpu: GpuSource | None = None,
    ) -> None:
        self._settings = settings
        self._host = host
        self._key = key
        self._spool = spool
        self._state_path = state_dir / STATE_FILE
        self._stop = stop
        self._scanner = scanner
        self._clock = clock
        self._cache: HashCache | None = None
        if hasher is None:
            self._cache = HashCache.open(
                state_dir / CACHE_FILE, max_entries=settings.hash_cache_entries
            )
            hasher = CachingHasher(
                self._cache, stop=stop, bytes_per_second=settings.hash_bytes_per_second
            )
        self._hasher = hasher
        self._watcher_factory = watcher_factory
        self._load_stores = stores
        self._processes: ProcessLoop | None = None
        if settings.processes and process_sensor is not None:
            self._processes = ProcessLoop(
                sensor=process_sensor,
                gpu=gpu or NoGpu(),
                emit=lambda fields, action: self._append(fields, action, self._clock()),
                interval=settings.process_interval,
                snapshot_interval=settings.snapshot_interval,
            )
        self._stores: Stores | None = None  # the latest index, for the background hasher
        self._lower_priority = lower_priority
        self._last_snapshot = 0.0
        self._passed_at: float | None = None
        self._lock = threading.Lock()  # the ledger and the hash queue
        self._save_lock = threading.Lock()
        self._ledger: Ledger | None = None
        self._dirty = False
        self._saved_at = 0.0
        self._to_hash: dict[str, tuple[StatKey, str | None]] = {}
        self._rescan = threading.Event()
        self.ship_stats = ShipStats()
        # delivery: resync a fresh spool; a snapshot request cuts the wait for the next pass
        self.resync = Resync(host.agent_id, key, on_snapshot=self._rescan.set)
        self.ship_deadline: float | None = None  # delivery: `run --once` gives up at this time

    # -- the pipeline ---------------------------------------------------------------------

    def scan_pass(self, *, snapshot: bool | None = None, defer: bool | None = None) -> PassResult:
        """One pass over the roots: spool an event per change and one health event."""
        now = self._clock()
        if snapshot is None:
            snapshot = now - self._last_snapshot >= self._settings.snapshot_interval
            # delivery: the collector (or a spool reset) asked for a full snapshot
            snapshot = bool(take_flag(self._spool, "snapshot_wanted")) or snapshot
        defer = self._settings.defer_hash if defer is None else defer
        result = PassResult()
        result.appended = self._apply(
            self._settings.roots, None, snapshot=snapshot, defer=defer, stats=result.stats
        )
        if self._stop.is_set():
            return result  # a partial pass must not report unseen files as removed
        self._append(self._health(result.stats), "snapshot", now)
        result.appended += 1
        with self._lock:
            result.models = len(self._state())
        self._save_state(force=True)
        if snapshot:
            self._last_snapshot = now
        self._passed_at = time.monotonic()
        return result

    def on_paths(self, paths: list[str]) -> int:
        """A watcher batch: read these paths (files or folders) and what they may group with."""
        stats = ScanStats()
        roots, scope = self._batch_scope(paths)
        appended = self._apply(
            [Path(p) for p in roots],
            scope,
            snapshot=False,
            defer=self._settings.defer_hash,
            stats=stats,
        )
        for problem in stats.errors:
            log.debug("watch: %s", problem)
        self._save_state()
        return appended

    def _batch_scope(self, paths: Sequence[str]) -> tuple[list[str], list[str]]:
        """The roots to read for a batch, and the paths whose models it may remove.

        A file may complete or break a set with its neighbours (shards, an index, a config),
        so when its folder holds such names, every file beside it is read again. A path inside
        a folder model (a SavedModel) brings in the whole folder.
        """
        roots: dict[str, None] = {}
        scope = list(paths)
        for path in paths:
            if os.path.isdir(path):
                roots[path] = None
                continue
            if os.path.lexists(path):
                roots[path] = None
            folder = os.path.dirname(path)
            siblings = direct_files(folder)
            if _may_group(path, siblings):
                roots.update(dict.fromkeys(siblings))
                scope += siblings
            with self._lock:
                ledger = self._state()
                holders = [a for a in _ancestors(folder) if ledger.get(a) is not None]
            roots.update(dict.fromkeys(holders))
            scope += holders
        return list(roots), scope

    def _apply(
        self,
        roots: Sequence[Path],
        scope: Sequence[str] | None,
        *,
        snapshot: bool,
        defer: bool,
        stats: ScanStats,
    ) -> int:
        """Observe the roots, group and record the models, then remove what scope lost."""
        with self._lock:
            generation = self._state().begin()
        stores = self._stores = safe_stores(self._load_stores)
        observations = [
            replace(obs, path=os.path.normpath(stores.canonical_path(obs.path)))
            for obs in self._scanner(
                list(roots),
                excludes=list(self._settings.excludes),
                hash_contents=False,
                stop=self._stop,
                stats=stats,
            )
        ]
        appended = 0
        for model in catalog_models(observations):
            if self._stop.is_set():
                return appended
            known = self._known(model, stores, defer=defer)
            if known is not None:
                appended += self._record(model.path, known, snapshot=snapshot)
        if self._stop.is_set():
            return appended  # a partial pass must not report unseen files as removed
        if scope is not None:
            scope = [*scope, *(stores.canonical_path(p) for p in scope)]
        now = self._clock()
        with self._lock:
            ledger = self._state()
            for path in ledger.unseen(scope, generation):
                appended += self._emit(ledger.record(path, None), now)
        return appended

    def _known(self, model: Reported, stores: Stores, *, defer: bool) -> Known | None:
        obs = model.primary
        key: StatKey = (obs.device, obs.inode, obs.size, obs.mtime_ns)
        digest = None
        if not model.members:  # a set has no one digest; its members' are not reported
            digest = self._digest(model.path, key, obs.fingerprint, defer=defer)
            if digest is None and self._stop.is_set():
                return None
        return Known(key, model_fields(model, digest, stores))

    def _digest(self, path: str, key: StatKey, fingerprint: str, *, defer: bool) -> str | None:
        """The content digest: cached, queued for the background hasher, or computed now."""
        digest = self._hasher.cached(key)
        if digest is None:
            # An evicted or lost cache entry: the digest last reported for this very stat is
            # as good, and keeps eviction from causing a round of "changed" events.
            with self._lock:
                digest = cached_sha256(self._state().get(path), key)
        if digest is not None:
            return digest
        if defer:
            with self._lock:
                if len(self._to_hash) < MAX_HASH_QUEUE:  # beyond it, a later pass re-queues
                    self._to_hash[path] = (key, fingerprint)
            return None
        try:
            return self._hasher(path, key, fingerprint)
        except OSError as exc:
            log.info("%s: not hashed: %s", path, exc)
            return None

    def _record(self, path: str, known: Known, *, snapshot: bool) -> int:
        now = self._clock()
        with self._lock:
            ledger = self._state()
            holder = ledger.holder(known.stat_key[:2])
            if holder is not None and holder != path and _same_inode(holder, known.stat_key):
                ledger.keep(holder)  # a second name for a file already reported
                return 0
            return self._emit(ledger.record(path, known, snapshot=snapshot), now)

    def _emit(self, event: tuple[str, Mapping[str, Any]] | None, now: float) -> int:
        if event is None:
            return 0
        self._dirty = True
        self._append(event[1], event[0], now)
        return 1

    def hash_pending(self) -> int:
        """Hash what earlier passes deferred, reporting each digest as a change; the count."""
        done = 0
        while not self._stop.is_set():
            with self._lock:
                if not self._to_hash:
                    break
                path = next(iter(self._to_hash))
                key, fingerprint = self._to_hash.pop(path)
            try:
                digest = self._hasher(path, key, fingerprint)
            except OSError as exc:
                log.info("%s: not hashed: %s", path, exc)
                continue
            if digest is not None:
                done += self._add_digest(path, key, digest)
        self._save_state()
        return done

    def _add_digest(self, path: str, key: StatKey, digest: str) -> int:
        origin_fields(self._stores, path, digest)  # warns when the store's digest differs
        with self._lock:
            ledger = self._state()
            before = ledger.get(path)
            if before is None or before.stat_key != key:
                return 0  # gone or rewritten since; its new version is queued on its own
            fields = {**before.fields, "file.hash.sha256": digest}
            return self._emit(ledger.record(path, Known(key, fields)), self._clock())

    # -- events and state -----------------------------------------------------------------

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
        fields.update(health_fields(self._spool))  # delivery: refusals, level, resets
        fields.update(_process_usage())
        if self._processes is not None:
            fields.update(self._processes.health_fields())
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

    def _state(self) -> Ledger:
        """The ledger, read from the state file on first use; call with the lock held."""
        if self._ledger is None:
            self._ledger = Ledger(self._load_state())
        return self._ledger

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

    def _save_state(self, *, force: bool = False) -> None:
        with self._save_lock:
            if not self._dirty and not force:
                return
            if not force and time.monotonic() - self._saved_at < SAVE_EVERY:
                return
            with self._lock:
                current = self._state().state()
                self._dirty = False
            data = {path: known.to_json() for path, known in current.items()}
            write_private(self._state_path, json.dumps(data).encode())
            self._saved_at = time.monotonic()

    # -- threads --------------------------------------------------------------------------

    def run(self, shipper: Shipper, *, once: bool) -> bool:
        """Scan and ship; with `once`, one pass shipped and acked. False if stopped first."""
        if once:
            self._lower_priority()  # the process exits after this pass; no need to restore it
            if self._processes is not None:
                self._processes.poll_once(snapshot=True)
            self.scan_pass(snapshot=True, defer=False)
            return drain(
                self._spool,
                shipper,
                stop=self._stop,
                stats=self.ship_stats,
                sync=self.resync,
                deadline=self.ship_deadline,
            )
        threads = self.start_sensors()
        shipping = threading.Thread(target=self._ship_forever, args=(shipper,), name="shipper")
        shipping.start()
        try:
            self._stop.wait()
        finally:
            self._stop.set()
            for thread in [*threads, shipping]:
                thread.join()
            self._save_state(force=True)
        return True

    def start_sensors(self) -> list[threading.Thread]:
        """Start the periodic pass, the watcher and the background hasher; all end on `stop`."""
        jobs: list[tuple[str, Callable[[], None]]] = [("scanner", self._scan_forever)]
        if self._settings.watch:
            jobs.append(("watcher", self._watch))
        if self._settings.defer_hash:
            jobs.append(("hasher", self._hash_forever))
        if self._processes is not None:
            loop = self._processes
            jobs.append(("processes", lambda: loop.run(self._stop)))
        threads = [threading.Thread(target=self._guarded(job), name=name) for name, job in jobs]
        for thread in threads:
            thread.start()
        return threads

    def _guarded(self, job: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            self._lower_priority()
            try:
                job()
            except Exception:
                # A sensor thread that dies must take the daemon down, not leave it half-blind.
                log.exception("%s failed; stopping", threading.current_thread().name)
                self._stop.set()

        return run

    def _scan_forever(self) -> None:
        while not self._stop.is_set():
            if self._passed_at is not None:  # counted from the last full pass, whoever ran it
                self._wait(self._passed_at + self._settings.interval - time.monotonic())
                if self._stop.is_set():
                    return
            self._rescan.clear()
            result = self.scan_pass()
            log.info("pass: %d models, %d events spooled", result.models, result.appended)

    def _watch(self) -> None:
        watcher: Runnable = self._watcher_factory(
            list(self._settings.roots),
            excludes=self._settings.excludes,
            on_paths=self.on_paths,
            stop=self._stop,
            settle=self._settings.settle_seconds,
            on_overflow=self._rescan.set,
        )
        watcher.run()

    def _hash_forever(self) -> None:
        while not self._stop.is_set():
            if not self.hash_pending():
                self._stop.wait(1.0)

    def _wait(self, seconds: float) -> None:
        """Wait on `stop` for `seconds`, in slices so that a rescan request cuts it short."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and not self._rescan.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._stop.wait(min(left, 1.0))

    def _ship_forever(self, shipper: Shipper) -> None:
        while not self._stop.is_set():
            drain(self._spool, shipper, stop=self._stop, stats=self.ship_stats, sync=self.resync)
            self._stop.wait(1.0)

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()


def _may_group(path: str, siblings: Sequence[str]) -> bool:
    """Whether a change at `path` can change how the files of its folder group into models."""
    if metadata_limit(os.path.basename(path)) is not None:
        return True  # a config.json, model card or shard index describes its neighbours
    return any(_SET_HINT.search(os.path.basename(p)) for p in [path, *siblings])


def _ancestors(folder: str) -> Iterator[str]:
    while True:
        yield folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return
        folder = parent


def _same_inode(path: str, key: StatKey) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == key[:2]


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
