"""The file side of the daemon: full passes, watcher batches and the background hasher.

Each one observes files (agent.observe), runs them through agent.pipeline against the
ledger (agent.state) and hands the events to `emit`; this module only decides what to read
when, and keeps the hash queue.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agent import pipeline
from agent.catalog import Stores, catalog_models, load_stores, origin_fields, safe_stores
from agent.config import Settings
from agent.detect.groups import metadata_limit
from agent.detect.model import FileObservation
from agent.inventory import Known, Reported, StatKey, cached_sha256
from agent.observe import Coverage, observe_tree
from agent.pipeline import Event
from agent.sensors.files import ScanStats, direct_files
from agent.state import StateFile

log = logging.getLogger(__name__)

MAX_HASH_QUEUE = 100_000
Emit = Callable[[Mapping[str, Any], str], None]  # fields, event.action
# Names that make a folder's files a set: shard indexes, numbered splits, ONNX external data,
# downloads in progress.
_SET_HINT = re.compile(
    r"\.index\.json$|-\d{5}-of-\d{5}\.|\.onnx(_data|\.data)?$|\.(part|partial|incomplete|tmp|"
    r"crdownload|download|downloadinprogress)$|^incomplete-|-partial(-\d+)?$",
    re.IGNORECASE,
)


class Hasher(Protocol):
    """sha256 of one version of a file (None: stopped, or the file changed meanwhile)."""

    def cached(self, key: StatKey) -> str | None: ...

    def __call__(self, path: str, key: StatKey, fingerprint: str | None = None) -> str | None: ...


class Tasks(Protocol):
    """Where the worker says what it is reading, for the watchdog to blame (a breadcrumb)."""

    def set(self, task: str) -> None: ...

    def clear(self) -> None: ...


class NoTasks:
    def set(self, task: str) -> None:
        pass

    def clear(self) -> None:
        pass


@dataclass
class PassResult:
    appended: int = 0
    models: int = 0
    stats: ScanStats = field(default_factory=ScanStats)
    coverage: Coverage = field(default_factory=Coverage)


class ModelLoop:
    def __init__(
        self,
        *,
        settings: Settings,
        state: StateFile,
        emit: Emit,
        hasher: Hasher,
        stop: threading.Event,
        stores: Callable[[], Stores] = load_stores,
        tasks: Tasks | None = None,
        pause: Callable[[], None] = lambda: None,
        skip: Callable[[], Sequence[str]] = tuple,
        snapshot_wanted: Callable[[], bool] = lambda: False,
    ) -> None:
        self._settings = settings
        self._state = state
        self._emit_fields = emit
        self._hasher = hasher
        self._stop = stop
        self._load_stores = stores
        self._tasks = tasks or NoTasks()
        self._pause = pause
        self._skip = skip  # exact paths set aside (the watchdog's quarantine)
        self._snapshot_wanted = snapshot_wanted  # the collector, or a spool reset, asked
        self._stores: Stores | None = None  # the latest index, for the background hasher
        self._queue_lock = threading.Lock()
        self._to_hash: dict[str, tuple[StatKey, str | None]] = {}
        self._last_snapshot = 0.0
        self.passed_at: float | None = None
        self.last_pass = PassResult()
        self.rescan = threading.Event()

    # -- passes and batches ---------------------------------------------------------------

    def scan_pass(self, *, snapshot: bool | None = None, defer: bool | None = None) -> PassResult:
        """One pass over the roots: an event per change; its coverage kept for health."""
        now = time.time()
        if snapshot is None:
            due = now - self._last_snapshot >= self._settings.snapshot_interval
            snapshot = self._snapshot_wanted() or due
        defer = self._settings.defer_hash if defer is None else defer
        result = PassResult()
        result.appended = self._apply(self._settings.roots, None, snapshot, defer, result.coverage)
        result.stats = result.coverage.stats
        if self._stop.is_set():
            return result  # a partial pass must not report unseen files as removed
        with self._state.ledger() as ledger:
            result.models = len(ledger)
        self._state.save(force=True)
        if snapshot:
            self._last_snapshot = now
        self.passed_at = time.monotonic()
        self.last_pass = result
        return result

    def on_paths(self, paths: list[str]) -> int:
        """A watcher batch: read these paths (files or folders) and what they may group with."""
        coverage = Coverage()
        roots, scope = self._batch_scope(paths)
        appended = self._apply([Path(p) for p in roots], scope, False, None, coverage)
        for problem in coverage.stats.errors:
            log.debug("watch: %s", problem)
        self._state.save()
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
            with self._state.ledger() as ledger:
                holders = [a for a in _ancestors(folder) if ledger.get(a) is not None]
            roots.update(dict.fromkeys(holders))
            scope += holders
        return list(roots), scope

    def _apply(
        self,
        roots: Sequence[Path],
        scope: Sequence[str] | None,
        snapshot: bool,
        defer: bool | None,
        coverage: Coverage,
    ) -> int:
        """Observe the roots, describe their models, record them; remove what scope lost."""
        defer = self._settings.defer_hash if defer is None else defer
        with self._state.ledger() as ledger:
            generation = ledger.begin()
        stores = self._stores = safe_stores(self._load_stores)
        found = self._observe(roots, coverage)
        observed = pipeline.canonical(found, stores)
        models = catalog_models(observed)
        described = []
        for model in models:
            known = self._describe(model, stores, defer)
            if self._stop.is_set():
                return 0
            described.append((model.path, known))
        events: list[Event | None] = []
        with self._state.ledger() as ledger:
            for path, known in described:
                events.append(
                    pipeline.record(ledger, path, known, snapshot=snapshot, same_file=_same_inode)
                )
            if scope is not None:
                scope = [*scope, *(stores.canonical_path(p) for p in scope)]
            events += pipeline.removals(ledger, scope, generation)
        return self._emit(events)

    def _observe(self, roots: Sequence[Path], coverage: Coverage) -> list[FileObservation]:
        excludes = [*self._settings.excludes, *(_exact(p) for p in self._skip())]

        def before_file(path: str, stats: ScanStats) -> None:
            self._pause()
            self._tasks.set(f"file:{path}")

        try:
            return list(
                observe_tree(
                    list(roots),
                    excludes=excludes,
                    coverage=coverage,
                    stop=self._stop,
                    on_file=before_file,
                )
            )
        finally:
            self._tasks.clear()

    def _describe(self, model: Reported, stores: Stores, defer: bool) -> Known:
        key = pipeline.stat_key(model.primary)
        digest = None
        if not model.members:  # a set has no one digest; its members' are not reported
            digest = self._digest(model.path, key, model.primary.fingerprint, defer=defer)
        return pipeline.describe(model, digest, stores)

    def _digest(self, path: str, key: StatKey, fingerprint: str, *, defer: bool) -> str | None:
        """The content digest: cached, queued for the background hasher, or computed now."""
        digest = self._hasher.cached(key)
        if digest is None:
            # An evicted or lost cache entry: the digest last reported for this very stat is
            # as good, and keeps eviction from causing a round of "changed" events.
            with self._state.ledger() as ledger:
                digest = cached_sha256(ledger.get(path), key)
        if digest is not None:
            return digest
        if defer:
            with self._queue_lock:
                if len(self._to_hash) < MAX_HASH_QUEUE:  # beyond it, a later pass re-queues
                    self._to_hash[path] = (key, fingerprint)
            return None
        return self._hash(path, key, fingerprint)

    def _hash(self, path: str, key: StatKey, fingerprint: str | None) -> str | None:
        self._pause()
        self._tasks.set(f"file:{path}")
        try:
            return self._hasher(path, key, fingerprint)
        except OSError as exc:
            log.info("%s: not hashed: %s", path, exc)
            return None
        finally:
            self._tasks.clear()

    def _emit(self, events: Sequence[Event | None]) -> int:
        emitted = [event for event in events if event is not None]
        if emitted:
            self._state.changed()
        for action, fields in emitted:
            self._emit_fields(fields, action)
        return len(emitted)

    # -- the background hasher ------------------------------------------------------------

    def hash_pending(self) -> int:
        """Hash what earlier passes deferred, reporting each digest as a change; the count."""
        done = 0
        while not self._stop.is_set():
            with self._queue_lock:
                if not self._to_hash:
                    break
                path = next(iter(self._to_hash))
                key, fingerprint = self._to_hash.pop(path)
            digest = self._hash(path, key, fingerprint)
            if digest is not None:
                origin_fields(self._stores, path, digest)  # warns when the store's differs
                with self._state.ledger() as ledger:
                    event = pipeline.with_digest(ledger, path, key, digest)
                done += self._emit([event])
        self._state.save()
        return done

    # -- thread bodies --------------------------------------------------------------------

    def scan_forever(self) -> None:
        while not self._stop.is_set():
            if self.passed_at is not None:  # counted from the last full pass, whoever ran it
                self._wait(self.passed_at + self._settings.interval - time.monotonic())
                if self._stop.is_set():
                    return
            self.rescan.clear()
            result = self.scan_pass()
            log.info("pass: %d models, %d events spooled", result.models, result.appended)

    def hash_forever(self) -> None:
        while not self._stop.is_set():
            if not self.hash_pending():
                self._stop.wait(1.0)

    def _wait(self, seconds: float) -> None:
        """Wait on `stop` for `seconds`, in slices so that a rescan request cuts it short."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and not self.rescan.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._stop.wait(min(left, 1.0))

    def request_snapshot(self) -> None:
        """The next pass reports every model, and starts without waiting its interval."""
        self._last_snapshot = float("-inf")
        self.rescan.set()

    def save(self) -> None:
        self._state.save(force=True)

    def health_fields(self) -> dict[str, Any]:
        stats = self.last_pass.stats
        return {
            "agent.health.files_scanned": stats.files_seen,
            "agent.health.permission_gaps": stats.permission_errors,
            "agent.health.permission_gap_paths": self.last_pass.coverage.gap_lines(),
        }


def _exact(path: str) -> str:
    """An fnmatch pattern that matches this path alone."""
    return re.sub(r"([*?\[])", r"[\1]", path)


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
