"""Wire the loops into threads and wait; every wait is interruptible by `stop`.

What each thread does lives elsewhere: agent.model_loop (files), agent.process_loop
(processes), agent.health (the agent itself), agent.shipper (delivery). `build` makes the
production parts from settings and a data dir; tests build the parts they need.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent import platform, users
from agent.catalog import Stores
from agent.config import Settings
from agent.hashcache import CACHE_FILE, CachingHasher, HashCache
from agent.health import Part, health_event, self_usage
from agent.model_loop import Emit, ModelLoop, Tasks
from agent.outbox import Outbox
from agent.pause import CpuBudget, Gate, PausePolicy
from agent.pipeline import HostFacts
from agent.process_loop import ProcessLoop, Sensor
from agent.resync import Resync, health_fields
from agent.sensors import priority
from agent.sensors.gpu import GpuSource, NoGpu
from agent.sensors.stores import load_store_index
from agent.sensors.watch import Runnable, Watcher, WatcherFactory
from agent.shipper import ShipStats
from agent.spool import Spool
from agent.spoolstate import take_flag
from agent.state import STATE_FILE, STATUS_FILE, StateFile, StatusBoard
from agent.watchdog.breadcrumb import BREADCRUMB_FILE, Breadcrumb
from agent.watchdog.quarantine import QUARANTINE_FILE, load_quarantine

__all__ = ["Daemon", "HostFacts", "Settings", "build"]

log = logging.getLogger(__name__)
BEAT_EVERY = 10.0  # seconds between status file writes
BUDGET_MARGIN = 0.8  # the scan aims below the watchdog's share, so that only a runaway trips it
SHA256_CPU_SECONDS_PER_BYTE = 1 / 1.3e9  # hashlib on one core, warm cache (FIELD-NOTES)

Deliver = Callable[[], bool]  # ship what is spooled; True when the spool is empty


def lower_this_thread() -> None:
    priority.lower_current_thread(priority.for_os(platform.current().os_type))


@dataclass
class Daemon:
    """The threads of a running agent, over parts built beforehand."""

    settings: Settings
    models: ModelLoop
    emit: Emit
    health: Callable[[], Mapping[str, Any]]
    stop: threading.Event
    processes: ProcessLoop | None = None
    watcher_factory: WatcherFactory = Watcher
    lower_priority: Callable[[], object] = lower_this_thread
    board: StatusBoard | None = None
    gate: Gate | None = None
    ship_stats: ShipStats = field(default_factory=ShipStats)  # the caller's deliver fills it
    resync: Resync | None = None  # the caller's deliver uses it
    closers: list[Callable[[], None]] = field(default_factory=list)
    failed: str = ""  # the thread whose failure stopped the daemon

    def once(self, deliver: Deliver) -> bool:
        """One full pass with hashes, a health event, shipped and acked; False if stopped."""
        self.lower_priority()  # the process exits after this pass; no need to restore it
        if self.gate is not None:
            self.gate.open()
        if self.processes is not None:
            self.processes.poll_once(snapshot=True)
        self.models.scan_pass(snapshot=True, defer=False)
        if self.stop.is_set():
            return False
        self.send_health()
        return deliver()

    def run(self, deliver: Deliver) -> bool:
        """Every thread until `stop`; then join them all and save the ledger.

        False when a thread failed: the process should exit with an error, so that the
        watchdog (or the service manager) starts a fresh one.
        """
        threads = self.start_sensors()
        threads.append(self._thread("shipper", lambda: self._ship_forever(deliver)))
        try:
            self.stop.wait()
        finally:
            self.stop.set()
            for thread in threads:
                thread.join()
            self.models.save()
            if self.board is not None:
                self.board.remove()
        return not self.failed

    def start_sensors(self) -> list[threading.Thread]:
        """The periodic pass, watcher, hasher, processes and health; all end on `stop`."""
        jobs: list[tuple[str, Callable[[], None]]] = [("scanner", self.models.scan_forever)]
        if self.settings.watch:
            jobs.append(("watcher", self._watch))
        if self.settings.defer_hash:
            jobs.append(("hasher", self.models.hash_forever))
        if self.processes is not None:
            loop = self.processes
            jobs.append(("processes", lambda: loop.run(self.stop)))
        jobs.append(("health", self._health_forever))
        return [self._thread(name, job) for name, job in jobs]

    def request_snapshot(self) -> None:
        """Report every model and process again, now (the collector asked for a resync)."""
        self.models.request_snapshot()
        if self.processes is not None:
            self.processes.request_snapshot()

    def send_health(self) -> None:
        self.emit(self.health(), "snapshot")

    def close(self) -> None:
        for close in self.closers:
            close()

    def _thread(self, name: str, job: Callable[[], None]) -> threading.Thread:
        def run() -> None:
            self.lower_priority()
            try:
                job()
            except Exception:
                # A thread that dies must take the daemon down, not leave it half-blind.
                log.exception("%s failed; stopping", name)
                self.failed = name
                self.stop.set()

        thread = threading.Thread(target=run, name=name)
        thread.start()
        return thread

    def _watch(self) -> None:
        watcher: Runnable = self.watcher_factory(
            list(self.settings.watch_roots or self.settings.roots),
            excludes=self.settings.excludes,
            on_paths=self.models.on_paths,
            stop=self.stop,
            settle=self.settings.settle_seconds,
            on_overflow=self.models.rescan.set,
        )
        watcher.run()

    def _health_forever(self) -> None:
        # The first event waits one interval, so that its CPU figure covers real work.
        due = time.monotonic() + self.settings.health_interval
        self._beat()
        while not self.stop.wait(min(BEAT_EVERY, max(0.0, due - time.monotonic()))):
            if time.monotonic() >= due:
                self.send_health()
                due = time.monotonic() + self.settings.health_interval
            self._beat()

    def _beat(self) -> None:
        if self.board is None:
            return
        stats = self.ship_stats
        self.board.delivery(sent=stats.sent, failures=stats.failures, last_error=stats.last_error)
        self.board.beat(paused=self.gate.paused if self.gate else "")

    def _ship_forever(self, deliver: Deliver) -> None:
        while not self.stop.is_set():
            deliver()
            self.stop.wait(1.0)


def store_index(settings: Settings, plat: platform.Platform) -> Callable[[], Stores]:
    """The store index over every user's stores when the agent covers every user."""
    if not (settings.users and users.privileged()):
        from agent.catalog import load_stores

        return load_stores
    roots = users.store_roots(plat, users.local_users(plat))
    return lambda: load_store_index(roots)


def build(
    *,
    settings: Settings,
    host: HostFacts,
    key: Ed25519PrivateKey,
    spool: Spool,
    data_dir: Path,
    stop: threading.Event,
    process_sensor: Sensor | None = None,
    gpu: GpuSource | None = None,
    extra_health: Mapping[str, Part] | None = None,
) -> Daemon:
    """The production daemon: hash cache, state and status files, pause gate, breadcrumb."""
    plat = platform.current()
    outbox = Outbox(spool=spool, key=key, host=host)
    cache = HashCache.open(data_dir / CACHE_FILE, max_entries=settings.hash_cache_entries)
    hasher = CachingHasher(cache, stop=stop, bytes_per_second=hash_rate(settings))
    gate = Gate(PausePolicy(settings.pause_on_battery, settings.pause_busy_percent), stop=stop)
    budget = CpuBudget(BUDGET_MARGIN * settings.watchdog_cpu_share, stop=stop)

    def pause() -> None:
        gate.wait()
        budget.spend()

    quarantine_path = data_dir / QUARANTINE_FILE
    tasks: Tasks | None = None
    crumb: Breadcrumb | None = None
    if settings.watchdog:
        tasks = crumb = Breadcrumb(data_dir / BREADCRUMB_FILE)
    models = ModelLoop(
        settings=settings,
        state=StateFile(data_dir / STATE_FILE),
        emit=outbox,
        hasher=hasher,
        stop=stop,
        stores=store_index(settings, plat),
        tasks=tasks,
        pause=pause,
        skip=lambda: load_quarantine(quarantine_path).paths(time.time()),
        snapshot_wanted=lambda: bool(take_flag(spool, "snapshot_wanted")),
    )
    processes = None
    if settings.processes and process_sensor is not None:
        processes = ProcessLoop(
            sensor=process_sensor,
            gpu=gpu or NoGpu(),
            emit=outbox,
            interval=settings.process_interval,
            snapshot_interval=settings.snapshot_interval,
        )
    usage = self_usage()
    parts: dict[str, Part] = {
        "usage": usage.sample,
        "spool": lambda: spool_fields(spool),
        "delivery": lambda: health_fields(spool),  # refusals, spool level and resets
        "files": models.health_fields,
        "watchdog": lambda: watchdog_fields(quarantine_path, gate),
    }
    if processes is not None:
        parts["processes"] = processes.health_fields
    parts.update(extra_health or {})
    closers = [cache.close] + ([crumb.close] if crumb is not None else [])
    daemon = Daemon(
        settings=settings,
        models=models,
        emit=outbox,
        health=lambda: health_event(parts),
        stop=stop,
        processes=processes,
        board=StatusBoard(data_dir / STATUS_FILE),
        gate=gate,
        closers=closers,
    )
    # A fresh spool resyncs with the collector; a snapshot it asks for starts a pass now.
    daemon.resync = Resync(host.agent_id, key, on_snapshot=daemon.request_snapshot)
    return daemon


def hash_rate(settings: Settings) -> int | None:
    """The configured hash rate, else one that keeps hashing within the CPU share."""
    if settings.hash_bytes_per_second is not None:
        return settings.hash_bytes_per_second
    share = BUDGET_MARGIN * settings.watchdog_cpu_share
    return int(share / SHA256_CPU_SECONDS_PER_BYTE)


def spool_fields(spool: Spool) -> dict[str, Any]:
    return {
        "agent.health.spool_bytes": spool.stats().pending_bytes,
        "agent.health.dropped_events": spool.take_dropped(),
    }


def watchdog_fields(path: Path, gate: Gate) -> dict[str, Any]:
    quarantine = load_quarantine(path)
    return {
        "agent.health.quarantined": quarantine.active(time.time()),
        "agent.health.watchdog_restarts": quarantine.restarts,
        "agent.health.paused": gate.paused,
    }
