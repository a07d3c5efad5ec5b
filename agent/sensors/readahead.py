"""Run a read on the items a walk is about to hand over, on a few threads and a bounded window
ahead of the caller, so that the disk works on many files while the caller decides about one."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from itertools import islice
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

THREADS = 4  # reads in flight: enough to keep an SSD's queue busy on a cold cache
BATCH = 64  # items per task: one hand-off per batch, not per file, keeps the overhead small
WINDOW = 8  # batches read ahead at most; with 4 KiB heads, 2 MiB held
_POLL = 0.1  # how often a wait looks at `stop`


def ahead(
    items: Iterable[T],
    read: Callable[[T], R | None],
    *,
    stop: threading.Event | None = None,
    threads: int = THREADS,
    batch: int = BATCH,
    window: int = WINDOW,
) -> Generator[tuple[T, R | None], None, None]:
    """Each item, in order, with what `read` returned for it (None if it raised).

    `read` runs on `threads` threads at most `window` batches ahead of the caller. Setting
    `stop` ends the iteration at the next item; closing the iterator stops the reads that
    have not started. Items come from `items` in the caller's thread, so their errors stay
    there.
    """
    pool = ThreadPoolExecutor(threads, thread_name_prefix="readahead")
    pending: deque[tuple[list[T], Future[list[R | None]]]] = deque()
    source = iter(items)
    try:
        while not _stopped(stop):
            while len(pending) < window:
                chunk = list(islice(source, batch))
                if not chunk:
                    break
                pending.append((chunk, pool.submit(_read_all, chunk, read, stop)))
            if not pending:
                return
            chunk, future = pending.popleft()
            results = _result(future, stop)
            if results is None or _stopped(stop):
                return  # a batch finished after stop was set holds no reads, only None
            for pair in zip(chunk, results, strict=True):
                if _stopped(stop):
                    return
                yield pair
    finally:
        # Never waits: a read stuck on a dead network share must not hold the caller.
        pool.shutdown(wait=False, cancel_futures=True)


def _stopped(stop: threading.Event | None) -> bool:
    return stop is not None and stop.is_set()


def _read_all(
    chunk: list[T], read: Callable[[T], R | None], stop: threading.Event | None
) -> list[R | None]:
    results: list[R | None] = []
    for item in chunk:
        if _stopped(stop):
            results.append(None)
            continue
        try:
            results.append(read(item))
        except Exception:
            # A bug in reading ahead costs the head, not the scan: the caller reads it itself.
            log.exception("reading ahead of %r failed", item)
            results.append(None)
    return results


def _result(future: Future[list[R | None]], stop: threading.Event | None) -> list[R | None] | None:
    """The batch's results; None if `stop` was set while waiting."""
    while True:
        try:
            return future.result(timeout=_POLL)
        except FutureTimeout:
            if _stopped(stop):
                return None
