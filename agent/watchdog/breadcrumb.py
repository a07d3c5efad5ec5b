"""The worker's current task in a small shared-memory file: a write per file costs a memory
copy, not a system call, and the supervisor can read it after killing the worker."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

SIZE = 4096
BREADCRUMB_FILE = "current-task"
_LENGTH = 2  # bytes of little-endian length before the text


class Breadcrumb:
    """Writer side: `set` the task about to start, `clear` when it is done."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.ftruncate(fd, SIZE)
            self._map = mmap.mmap(fd, SIZE)
        finally:
            os.close(fd)
        self.clear()

    def set(self, task: str) -> None:
        data = task.encode("utf-8", "surrogateescape")[: SIZE - _LENGTH]
        # Length last: a reader that sees a new length sees the text already written.
        self._map[_LENGTH : _LENGTH + len(data)] = data
        self._map[0:_LENGTH] = len(data).to_bytes(_LENGTH, "little")

    def clear(self) -> None:
        self._map[0:_LENGTH] = b"\0\0"

    def close(self) -> None:
        self._map.close()


def read_breadcrumb(path: Path) -> str | None:
    """The task the worker last set and did not clear; None when idle or unreadable."""
    try:
        raw = path.read_bytes()[:SIZE]
    except OSError:
        return None
    if len(raw) < _LENGTH:
        return None
    length = int.from_bytes(raw[:_LENGTH], "little")
    if length == 0 or length > len(raw) - _LENGTH:
        return None
    return raw[_LENGTH : _LENGTH + length].decode("utf-8", "surrogateescape")
