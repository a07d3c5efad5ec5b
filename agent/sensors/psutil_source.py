"""Processes through psutil: the source for macOS and Windows, and the psutil calls the Linux
source shares (details, sockets, psutil's exceptions mapped to the protocol's)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from typing import Any, TypeVar

import psutil

from agent.detect.processes import classify_mapped
from agent.sensors.process_source import Brief, Details

_T = TypeVar("_T")


def psutil_call(call: Callable[[], _T]) -> _T:
    try:
        return call()
    except psutil.ZombieProcess as exc:  # exited, not reaped: nothing more to read, yet listed
        raise PermissionError(str(exc)) from None
    except psutil.NoSuchProcess as exc:
        raise ProcessLookupError(str(exc)) from None
    except psutil.AccessDenied as exc:
        raise PermissionError(str(exc)) from None


def _optional(call: Callable[[], _T]) -> _T | None:
    try:
        return psutil_call(call)
    except PermissionError:
        return None


def process_details(pid: int) -> Details:
    proc = psutil_call(lambda: psutil.Process(pid))
    with proc.oneshot():
        name, exe = _optional(proc.name), _optional(proc.exe)
        cmdline, username = _optional(proc.cmdline), _optional(proc.username)
    return Details(name or None, exe or None, tuple(cmdline or ()), username)


def listening(connections: Iterable[Any]) -> dict[int, list[tuple[str, int]]]:
    found: dict[int, list[tuple[str, int]]] = {}
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.pid is not None and conn.laddr:
            found.setdefault(conn.pid, []).append((conn.laddr.ip, conn.laddr.port))
    return {pid: sorted(set(items)) for pid, items in found.items()}


class PsutilSource:
    """macOS and Windows through psutil. macOS psutil lists no memory maps, so libraries and
    mapped models are unknown there; executables, command lines, open files and sockets remain."""

    def __init__(
        self, *, listen_every: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._listen_every = listen_every
        self._clock = clock
        self._listen_at: float | None = None
        self._listen: dict[int, list[tuple[str, int]]] = {}

    def briefs(self) -> dict[int, Brief]:
        found: dict[int, Brief] = {}
        attrs = ["name", "ppid", "create_time", "memory_info", "cpu_times", "num_threads"]
        for proc in psutil.process_iter(attrs):
            info = proc.info
            memory, cpu = info.get("memory_info"), info.get("cpu_times")
            if info.get("create_time") is None:
                continue
            found[proc.pid] = Brief(
                pid=proc.pid,
                create_time=round(info["create_time"], 2),
                name=info.get("name") or "",
                ppid=info.get("ppid") or 0,
                vsize=memory.vms if memory else 0,
                rss=memory.rss if memory else None,
                cpu_seconds=cpu.user + cpu.system if cpu else None,
                num_threads=info.get("num_threads"),
            )
        return found

    def details(self, pid: int) -> Details:
        return process_details(pid)

    def mappings(self, pid: int) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        proc = psutil_call(lambda: psutil.Process(pid))
        if not hasattr(proc, "memory_maps"):
            return None
        return classify_mapped([m.path for m in psutil_call(proc.memory_maps) if m.path])

    def open_files(self, pid: int) -> tuple[str, ...]:
        proc = psutil_call(lambda: psutil.Process(pid))
        return tuple(sorted({f.path for f in psutil_call(proc.open_files)}))

    def environ(self, pid: int, names: Collection[str]) -> dict[str, str]:
        proc = psutil_call(lambda: psutil.Process(pid))
        return {k: v for k, v in psutil_call(proc.environ).items() if k in names}

    def listeners(self) -> dict[int, list[tuple[str, int]]]:
        # No cheap change signal here: the whole socket table is asked for every
        # `listen_every` seconds, which keeps it off the steady-state bill.
        now = self._clock()
        if self._listen_at is None or now - self._listen_at >= self._listen_every:
            self._listen = listening(psutil_call(lambda: psutil.net_connections(kind="inet")))
            self._listen_at = now
        return self._listen
