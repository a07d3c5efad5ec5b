"""The ProcessSource protocol, one OS's way to see processes, and the values it returns."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Brief:
    """What the cheap pass learns of every process, every scan."""

    pid: int
    create_time: float
    name: str
    ppid: int
    vsize: int  # changes when libraries or models are mapped: the trigger for a new look
    rss: int | None = None
    cpu_seconds: float | None = None
    num_threads: int | None = None
    kernel: bool = False


@dataclass(frozen=True)
class Details:
    name: str | None
    exe: str | None
    cmdline: tuple[str, ...]
    username: str | None


class ProcessSource(Protocol):
    """One OS's way to see processes. Methods raise ProcessLookupError for a process that is
    gone and PermissionError for one the agent may not read."""

    def briefs(self) -> dict[int, Brief]: ...

    def details(self, pid: int) -> Details: ...

    def mappings(self, pid: int) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """(libraries, other mapped files); None where this OS offers no way to list them."""

    def open_files(self, pid: int) -> tuple[str, ...]: ...

    def environ(self, pid: int, names: Collection[str]) -> dict[str, str]: ...

    def listeners(self) -> dict[int, list[tuple[str, int]]]: ...
