"""Read the model stores' small metadata files and snapshot links, and the small files beside
weights that grouping needs; never a weights file, never more than a bounded number of bytes.

What the bytes mean is decided in agent.detect.stores and agent.detect.groups.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Sequence

from agent.detect.groups import metadata_limit
from agent.detect.stores import (
    StoreIndex,
    StoreRoot,
    build_index,
    descends,
    is_snapshot_link,
    wants_metadata,
)
from agent.sensors.files import ScanStats

MAX_METADATA_BYTES = 256 << 10
MAX_ENTRIES_PER_ROOT = 200_000
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_OPEN_FLAGS |= getattr(os, "O_BINARY", 0) | getattr(os, "O_NOCTTY", 0)


def load_store_index(roots: Sequence[StoreRoot], *, stats: ScanStats | None = None) -> StoreIndex:
    """Index the stores under `roots`; missing roots are skipped, unreadable entries counted."""
    stats = stats if stats is not None else ScanStats()
    files: dict[str, bytes] = {}
    links: dict[str, str] = {}
    for root in roots:
        _collect(root, files, links, stats)
    return build_index(roots, files, links)


def read_metadata_files(paths: Iterable[str], *, stats: ScanStats) -> dict[str, bytes]:
    """Each file up to one byte past its `metadata_limit`, so that the parser can tell a file
    that is too large; files that cannot be read are counted in `stats` and left out."""
    found: dict[str, bytes] = {}
    for path in paths:
        limit = metadata_limit(os.path.basename(path))
        if limit is None:
            continue
        try:
            found[path] = read_bounded(path, limit + 1)
        except OSError as e:
            stats.record_error(path, e)
    return found


def read_bounded(path: str, limit: int) -> bytes:
    """At most `limit` bytes of a regular file; OSError for anything else."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        parts: list[bytes] = []
        remaining = limit
        while remaining > 0:
            part = os.read(fd, min(remaining, 1 << 16))
            if not part:
                break
            parts.append(part)
            remaining -= len(part)
        return b"".join(parts)
    finally:
        os.close(fd)


def _collect(
    root: StoreRoot, files: dict[str, bytes], links: dict[str, str], stats: ScanStats
) -> None:
    """List the folders `descends` allows, one open at a time, within MAX_ENTRIES_PER_ROOT."""
    top = os.path.normpath(os.fspath(root.path))
    if not descends(root, ()):
        return
    pending: list[tuple[str, ...]] = [()]
    entries = 0
    while pending:
        rel = pending.pop()
        folder = os.path.join(top, *rel)
        try:
            with os.scandir(folder) as listing:
                for entry in listing:
                    entries += 1
                    if entries > MAX_ENTRIES_PER_ROOT:
                        stats.record_error(top, OSError(errno.E2BIG, "too many entries to index"))
                        return
                    _entry(root, (*rel, entry.name), entry, files, links, stats, pending)
        except FileNotFoundError:
            if rel:  # removed while listing; a root that does not exist is the usual case
                stats.record_error(folder, FileNotFoundError(errno.ENOENT, "vanished"))
        except OSError as e:
            stats.record_error(folder, e)


def _entry(
    root: StoreRoot,
    rel: tuple[str, ...],
    entry: os.DirEntry[str],
    files: dict[str, bytes],
    links: dict[str, str],
    stats: ScanStats,
    pending: list[tuple[str, ...]],
) -> None:
    try:
        if entry.is_symlink():
            # Snapshot links are read, never followed; other links are the walker's business.
            if is_snapshot_link(root, rel):
                target = os.readlink(entry.path)
                links[entry.path] = os.path.normpath(
                    os.path.join(os.path.dirname(entry.path), target)
                )
        elif entry.is_dir(follow_symlinks=False):
            if descends(root, rel):
                pending.append(rel)
        elif entry.is_file(follow_symlinks=False) and wants_metadata(root, rel):
            data = read_bounded(entry.path, MAX_METADATA_BYTES + 1)
            if len(data) > MAX_METADATA_BYTES:
                raise OSError(errno.EFBIG, f"larger than {MAX_METADATA_BYTES} bytes")
            files[entry.path] = data
    except OSError as e:
        stats.record_error(entry.path, e)
