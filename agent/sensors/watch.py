"""Turn file system notifications under the roots into batches of settled paths for the scan
pipeline; the watcher only says where to look, never what a file is."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from agent.sensors.files import is_excluded

log = logging.getLogger(__name__)

# Opens and closes-without-write are left out on purpose: with them, inotify on a tree of
# ~5,000 directories overflowed its queue again and again (watchdog re-lists the tree after an
# overflow, which opens every directory, which queues more events), burning ~60% of a core
# while idle and delivering nothing. With this filter: ~0.05%. See bench/watch_idle.py.
WATCHED_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,  # close after write: the end of most downloads
    FileMovedEvent,
    FileDeletedEvent,
    DirCreatedEvent,
    DirMovedEvent,
    DirDeletedEvent,
]
MAX_PENDING = 20_000
RETRY_SECONDS = 60.0
TICK_SECONDS = 0.2

StatFn = Callable[[str], tuple[int, int] | None]


@dataclass
class _Pending:
    stat: tuple[int, int] | None = None
    checked: float = 0.0


class Settle:
    """Paths touched lately; one is due once its size and mtime held still for `quiet` seconds,
    or once it is gone. Beyond `max_pending` paths it gives up and asks for a full scan."""

    def __init__(self, quiet: float, max_pending: int = MAX_PENDING) -> None:
        self._quiet = quiet
        self._max = max_pending
        self._pending: dict[str, _Pending] = {}
        self.overflowed = False

    def __len__(self) -> int:
        return len(self._pending)

    def touch(self, path: str) -> None:
        if path not in self._pending and len(self._pending) >= self._max:
            self._pending.clear()
            self.overflowed = True  # the caller rescans everything instead
            return
        self._pending[path] = _Pending()  # any news restarts the wait

    def due(self, now: float, stat: StatFn) -> list[str]:
        """Paths ready to be read; a path is stat'ed at most once per `quiet` seconds."""
        ready = []
        for path, pending in list(self._pending.items()):
            if pending.stat is not None and now - pending.checked < self._quiet:
                continue
            current = stat(path)
            if current is None or (
                current == pending.stat and now - pending.checked >= self._quiet
            ):
                ready.append(path)
                del self._pending[path]
            elif current != pending.stat:
                pending.stat, pending.checked = current, now
        return ready


def stat_signature(path: str) -> tuple[int, int] | None:
    """Size and mtime_ns, what a write in progress keeps changing; None if the path is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class Runnable(Protocol):
    def run(self) -> None: ...


class WatcherFactory(Protocol):
    def __call__(
        self,
        roots: Sequence[Path],
        *,
        excludes: Sequence[str],
        on_paths: Callable[[list[str]], object],
        stop: threading.Event,
        settle: float,
        on_overflow: Callable[[], None],
    ) -> Runnable: ...


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher, root: str) -> None:
        self._watcher = watcher
        self._root = root

    def dispatch(self, event: FileSystemEvent) -> None:
        # Runs on watchdog's thread: only note the paths; reading them is the watcher's job.
        for raw in (event.src_path, event.dest_path):
            path = os.fsdecode(raw)
            if path and not is_excluded(path, self._watcher.excludes, self._root):
                self._watcher.touch(path)


class Watcher:
    """Watch the roots (recursively) until `stop`; hand settled paths to `on_paths`.

    Roots that do not exist yet are retried every `retry_seconds`, since stores appear when a
    tool is first installed. Anything missed (a full inotify queue, a root that cannot be
    watched) is left to the daemon's periodic full pass.
    """

    def __init__(
        self,
        roots: Sequence[Path],
        *,
        excludes: Sequence[str] = (),
        on_paths: Callable[[list[str]], object],
        stop: threading.Event,
        settle: float = 1.0,
        on_overflow: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        observer_factory: Callable[[], BaseObserver] = Observer,
        stat: StatFn = stat_signature,
        retry_seconds: float = RETRY_SECONDS,
        event_filter: list[type[FileSystemEvent]] | None = WATCHED_EVENTS,
    ) -> None:
        self.excludes = tuple(excludes)
        self._roots = [os.path.normpath(os.fspath(root)) for root in roots]
        self._on_paths = on_paths
        self._on_overflow = on_overflow
        self._stop = stop
        self._clock = clock
        self._observer_factory = observer_factory
        self._stat = stat
        self._retry = retry_seconds
        self._filter = event_filter  # None: every event, watchdog's default (for comparison)
        self._settle = Settle(settle)
        self._lock = threading.Lock()
        self.watching: list[str] = []
        self.ready = threading.Event()  # set once the roots that exist are being watched

    def touch(self, path: str) -> None:
        with self._lock:
            self._settle.touch(path)

    def run(self) -> None:
        observer = self._observer_factory()
        waiting = self._schedule(observer, self._roots)
        observer.start()  # places the inotify watches before it returns
        self.ready.set()
        retry_at = self._clock() + self._retry
        try:
            while not self._stop.is_set():
                # A short tick costs a few microseconds per wake, and keeps `stop` the only
                # thing waited on, so the loop needs no second wake-up channel.
                self._stop.wait(TICK_SECONDS)
                self._deliver()
                if waiting and self._clock() >= retry_at:
                    still = self._schedule(observer, waiting)
                    for root in set(waiting) - set(still):
                        self.touch(root)  # a store that just appeared: read what it holds
                    waiting, retry_at = still, self._clock() + self._retry
        finally:
            observer.stop()
            observer.join(timeout=10)

    def _deliver(self) -> None:
        with self._lock:
            ready = self._settle.due(self._clock(), self._stat)
            overflowed, self._settle.overflowed = self._settle.overflowed, False
        if overflowed:
            log.warning("too many paths changed at once; asking for a full scan")
            self._on_overflow()
        if ready and not self._stop.is_set():
            self._on_paths(ready)

    def _schedule(self, observer: BaseObserver, roots: Sequence[str]) -> list[str]:
        """Watch each root that is a directory; return those to try again later."""
        waiting = []
        for root in roots:
            if not os.path.isdir(root):
                waiting.append(root)
                continue
            try:
                observer.schedule(
                    _Handler(self, root), root, recursive=True, event_filter=self._filter
                )
            except OSError as exc:
                # Out of inotify watches, or a directory we may not read: the periodic pass
                # still covers this root; retrying would only repeat the failure.
                log.warning("%s: not watched, periodic scans only: %s", root, exc)
                continue
            self.watching.append(root)
        return waiting
