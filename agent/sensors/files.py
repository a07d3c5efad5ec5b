"""Walk the file system for model files: read their headers, fingerprint and hash them.

The only module of the file sensor that touches the disk; what the bytes mean is decided
in agent.detect.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import hashlib
import io
import itertools
import logging
import os
import stat
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent.detect.formats import HEAD_BYTES, ReadAt, claimed, identify
from agent.detect.model import FINGERPRINT_HEAD_BYTES, FileObservation, fingerprint
from agent.errors import FormatError
from agent.sensors import readahead

S_ISDIR, S_ISREG = stat.S_ISDIR, stat.S_ISREG

log = logging.getLogger(__name__)

MIN_MODEL_BYTES = 16
MAX_ERRORS = 100
HASH_CHUNK = 1 << 20
# Opening never blocks, even if a FIFO or device replaced the file after it was listed.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_OPEN_FLAGS |= getattr(os, "O_BINARY", 0) | getattr(os, "O_NOCTTY", 0)


@dataclass
class ScanStats:
    """What a scan covered and what it could not read; `errors` keeps the first MAX_ERRORS."""

    files_seen: int = 0
    models_found: int = 0
    permission_errors: int = 0
    error_count: int = 0
    errors: list[str] = field(default_factory=list)

    def record_error(self, path: Path | str, error: BaseException) -> None:
        if isinstance(error, PermissionError):
            self.permission_errors += 1
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            self.errors.append(f"{path}: {reason}")


def _key(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


@dataclass
class _Walk:
    """One walk's memory: directories entered, and the files that could be reached twice."""

    excludes: Sequence[str]
    stats: ScanStats
    stop: threading.Event | None
    dirs: set[tuple[int, int]] = field(default_factory=set)
    files: set[tuple[int, int]] = field(default_factory=set)

    def excluded(self, path: str, name: str) -> bool:
        return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(name, p) for p in self.excludes)

    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def enter(self, st: os.stat_result) -> bool:
        """True the first time a directory is reached; symlink loops end here."""
        if _key(st) in self.dirs:
            return False
        self.dirs.add(_key(st))
        return True

    def first_visit(self, path: str, st: os.stat_result, via_symlink: bool) -> bool:
        """True the first time a regular file is reached.

        Only files that can recur are remembered, so memory stays small on big trees: a
        hardlinked file, or one reached through a file symlink. A symlink whose target's
        directory is already part of the walk is dropped, since the walk reaches the target
        under its own name.
        """
        key = _key(st)
        if key in self.files:
            return False
        if via_symlink:
            parent = os.stat(os.path.dirname(os.path.realpath(path)))
            if _key(parent) in self.dirs:
                return False
        if via_symlink or st.st_nlink > 1:
            self.files.add(key)
        return True


def iter_files(
    roots: Sequence[Path],
    *,
    excludes: Sequence[str] = (),
    stats: ScanStats,
    stop: threading.Event | None = None,
) -> Iterator[tuple[Path, os.stat_result]]:
    """Every regular file under the roots once, with its stat; errors go to `stats`.

    While the caller works on a file, other threads read the first bytes of the next ones
    (agent.sensors.readahead), so a cold disk serves many reads at once. observe_file, given
    the path and stat just yielded, decides from those bytes: a file no format claims is
    never opened again. Each root is walked after the caller is done with the one before.
    """
    walk = _Walk(excludes=excludes, stats=stats, stop=stop)
    for root in roots:
        if walk.stopped():
            return
        path = os.fspath(root)
        if walk.excluded(path, os.path.basename(path)):
            continue
        files = _visit(walk, path, via_symlink=os.path.islink(path))
        with contextlib.closing(readahead.ahead(files, _read_head, stop=stop)) as read:
            for (name, st), head in read:
                key = stat_key(st)
                if head is not None:
                    _HEADS[key] = head
                try:
                    yield Path(name), st
                finally:
                    _HEADS.pop(key, None)


# The head read ahead for the file iter_files has just yielded, by its stat_key: observe_file
# takes it from here. One entry per walk in progress, since each goes once the caller asks for
# the next file.
_HEADS: dict[tuple[int, int, int, int], bytes] = {}


def _read_head(item: tuple[str, os.stat_result]) -> bytes | None:
    """What identify() looks at first, if the file is still the version the walk saw; None
    when it is not, or cannot be read (observe_file then opens it and reports why)."""
    path, st = item
    if st.st_size < MIN_MODEL_BYTES:
        return None
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        return None
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or stat_key(now) != stat_key(st):
            return None
        want = min(HEAD_BYTES, now.st_size)
        head = os.read(fd, want)
        return head if len(head) == want else None
    except OSError:
        return None
    finally:
        os.close(fd)


def _visit(walk: _Walk, path: str, via_symlink: bool) -> Iterator[tuple[str, os.stat_result]]:
    try:
        st = os.stat(path)
    except OSError as e:
        walk.stats.record_error(path, e)
        return
    if stat.S_ISDIR(st.st_mode):
        if walk.enter(st):
            yield from _walk_tree(walk, path)
    elif _regular_first_visit(walk, path, st, via_symlink):
        yield path, st


def _regular_first_visit(walk: _Walk, path: str, st: os.stat_result, via_symlink: bool) -> bool:
    """Devices, FIFOs and sockets are never opened; each regular file counts once."""
    if not stat.S_ISREG(st.st_mode):
        return False
    try:
        first = walk.first_visit(path, st, via_symlink)
    except OSError as e:
        walk.stats.record_error(path, e)
        return False
    if first:
        walk.stats.files_seen += 1
    return first


def _walk_tree(walk: _Walk, top: str) -> Iterator[tuple[str, os.stat_result]]:
    """Depth-first with an explicit stack: one directory open at a time, no recursion limit."""
    pending = [top]
    while pending and not walk.stopped():
        directory = pending.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if walk.excludes and walk.excluded(entry.path, entry.name):
                        continue
                    # os.stat, not DirEntry.stat: on Windows the entry's cached stat has no
                    # inode number.
                    try:
                        st = os.stat(entry.path)
                    except OSError as e:
                        walk.stats.record_error(entry.path, e)
                        continue
                    mode = st.st_mode
                    if S_ISDIR(mode):
                        if walk.enter(st):
                            pending.append(entry.path)
                    elif S_ISREG(mode) and _first_visit(walk, entry, st):
                        yield entry.path, st
        except OSError as e:
            walk.stats.record_error(directory, e)


def _first_visit(walk: _Walk, entry: os.DirEntry[str], st: os.stat_result) -> bool:
    """A regular file seen the first time; the common one (one link, no symlink) is quick."""
    if st.st_nlink == 1 and not walk.files and not entry.is_symlink():
        walk.stats.files_seen += 1
        return True
    return _regular_first_visit(walk, entry.path, st, entry.is_symlink())


def sha256_file(
    path: Path,
    *,
    stop: threading.Event | None = None,
    bytes_per_second: int | None = None,
    chunk: int = HASH_CHUNK,
    expect: tuple[int, int, int, int] | None = None,
) -> str | None:
    """Hex sha256 of the whole file, optionally throttled; None if `stop` was set meanwhile.

    With `expect` (device, inode, size, mtime_ns), None also when the file is not that one, or
    changed while it was read: a digest must belong to the stat it is cached under.
    """
    with _open_regular(path) as f:
        before = os.fstat(f.fileno())
        if not stat.S_ISREG(before.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        if expect is not None and stat_key(before) != expect:
            return None
        digest = _hash_stream(f, stop=stop, bytes_per_second=bytes_per_second, chunk=chunk)
        if expect is not None and stat_key(os.fstat(f.fileno())) != expect:
            return None
        return digest


def stat_key(st: os.stat_result) -> tuple[int, int, int, int]:
    """What identifies one version of one file: device, inode, size, mtime_ns."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def is_excluded(path: str, excludes: Sequence[str], root: str) -> bool:
    """Whether the walk from `root` would have skipped `path` or one of its parents.

    The watcher reports single paths deep in a tree; this applies the same globs as the walk
    (full path or name) to each step from the root down.
    """
    if not excludes:
        return False
    step = os.path.normpath(path)
    top = os.path.normpath(root)
    if step != top and not step.startswith(top.rstrip(os.sep) + os.sep):
        return False
    while True:
        if any(
            fnmatch.fnmatch(step, p) or fnmatch.fnmatch(os.path.basename(step), p) for p in excludes
        ):
            return True
        parent = os.path.dirname(step)
        if step == top or parent == step:
            return False
        step = parent


def list_folders(
    folders: Iterable[str], *, stats: ScanStats, max_names: int = 100_000
) -> dict[str, list[str]]:
    """The names in each folder (files and sub-folders), for grouping files into models.

    A folder that vanished is left out; one that cannot be read is counted in `stats`.
    """
    listing: dict[str, list[str]] = {}
    for folder in folders:
        try:
            with os.scandir(folder) as entries:
                names = (entry.name for entry in entries)
                listing[folder] = list(itertools.islice(names, max_names))
        except FileNotFoundError:
            continue
        except OSError as e:
            stats.record_error(folder, e)
    return listing


def direct_files(folder: str) -> list[str]:
    """The regular files directly in a folder (through symlinks), for a watcher batch."""
    try:
        with os.scandir(folder) as entries:
            return [entry.path for entry in entries if entry.is_file()]
    except OSError:
        return []  # gone or unreadable: the batch then reads only the paths it was given


def _hash_stream(
    f: io.FileIO, *, stop: threading.Event | None, bytes_per_second: int | None, chunk: int
) -> str | None:
    # Waiting on an event, never sleeping, keeps the throttle interruptible.
    waiter = stop if stop is not None else threading.Event()
    digest = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    done = 0
    started = time.monotonic()
    f.seek(0)
    while not waiter.is_set():
        n = f.readinto(buf)
        if not n:
            return digest.hexdigest()
        digest.update(view[:n])
        done += n
        if bytes_per_second:
            ahead = done / bytes_per_second - (time.monotonic() - started)
            if ahead > 0:
                waiter.wait(ahead)
    return None


def observe_file(
    path: Path,
    st: os.stat_result,
    *,
    hash_contents: bool = True,
    stop: threading.Event | None = None,
    hash_bytes_per_second: int | None = None,
) -> FileObservation | None:
    """Identify one file by its header; None for files that are no model we know.

    Raises FormatError for a broken model file and OSError when it cannot be read. If `stop`
    is set while hashing, the observation comes back with sha256 None.
    """
    if st.st_size < MIN_MODEL_BYTES:
        return None
    head = _HEADS.pop(stat_key(st), None)
    if head is not None and not claimed(head, st.st_size):
        return None  # decided from the bytes read ahead: no format starts like this
    with _open_regular(path) as f:
        opened = os.fstat(f.fileno())
        if not stat.S_ISREG(opened.st_mode) or opened.st_size < MIN_MODEL_BYTES:
            return None
        read_at = _reader(f, opened.st_size)
        info = identify(read_at, opened.st_size)
        if info is None:
            return None
        head = read_at(0, FINGERPRINT_HEAD_BYTES)
        digest = None
        if hash_contents:
            digest = _hash_stream(
                f, stop=stop, bytes_per_second=hash_bytes_per_second, chunk=HASH_CHUNK
            )
    return FileObservation(
        path=str(path),
        size=opened.st_size,
        mtime_ns=opened.st_mtime_ns,
        device=opened.st_dev,
        inode=opened.st_ino,
        sha256=digest,
        fingerprint=fingerprint(head, opened.st_size),
        info=info,
        uid=opened.st_uid if os.name == "posix" else None,
    )


def scan(
    roots: Sequence[Path],
    *,
    excludes: Sequence[str] = (),
    hash_contents: bool = True,
    stop: threading.Event | None = None,
    stats: ScanStats | None = None,
    hash_bytes_per_second: int | None = None,
) -> Iterator[FileObservation]:
    """Every model file under the roots; unreadable and broken files go to `stats.errors`."""
    stats = stats if stats is not None else ScanStats()
    for path, st in iter_files(roots, excludes=excludes, stats=stats, stop=stop):
        if stop is not None and stop.is_set():
            return
        try:
            obs = observe_file(
                path,
                st,
                hash_contents=hash_contents,
                stop=stop,
                hash_bytes_per_second=hash_bytes_per_second,
            )
        except (OSError, FormatError) as e:
            stats.record_error(path, e)
            continue
        except Exception as e:
            # A parser bug must not end the scan; the traceback goes to the log.
            log.exception("reading %s failed", path)
            stats.record_error(path, e)
            continue
        if stop is not None and stop.is_set():
            return  # a hash cut short is no observation
        if obs is not None:
            stats.models_found += 1
            yield obs


def _open_regular(path: Path) -> io.FileIO:
    """Open without blocking; the caller checks with fstat what it really opened."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        return io.FileIO(fd, "rb", closefd=True)
    except BaseException:
        os.close(fd)
        raise


def _reader(f: io.FileIO, size: int) -> ReadAt:
    """A ReadAt over an open file, clipped to the size seen when it was opened.

    The head (what identify reads first) is read once and kept: parsers read it again and
    the fingerprint reads it last, so a small file is read by one call.
    """
    fd = f.fileno()
    first = b""

    def read_at(offset: int, length: int) -> bytes:
        nonlocal first
        length = min(length, size - offset)
        if offset < 0 or length <= 0:
            return b""
        if offset + length <= HEAD_BYTES:
            if not first:
                first = _read(f, fd, 0, min(HEAD_BYTES, size))
            if offset + length <= len(first):
                return first[offset : offset + length]
        return _read(f, fd, offset, length)

    return read_at


def _read(f: io.FileIO, fd: int, offset: int, length: int) -> bytes:
    """Up to `length` bytes at `offset`; fewer only where the file ends."""
    parts = []
    while length > 0:
        part = os.pread(fd, length, offset) if _HAS_PREAD else _seek_read(f, length, offset)
        if not part:
            break
        parts.append(part)
        offset += len(part)
        length -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _seek_read(f: io.FileIO, length: int, offset: int) -> bytes:
    f.seek(offset)
    return f.read(length) or b""


# pread: one system call, and no shared file position; Windows has none.
_HAS_PREAD = hasattr(os, "pread")
