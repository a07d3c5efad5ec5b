"""AMD and Intel GPU memory and engine time per process from Linux DRM fdinfo (the fdinfo of each
open /dev/dri node). Utilization needs two readings, so the source keeps the previous one."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Protocol

from agent.detect.gpu import (
    MAX_FDINFO_BYTES,
    DrmClient,
    DrmKey,
    GpuSample,
    drm_baseline,
    drm_key,
    drm_sample,
    parse_drm_fdinfo,
)
from agent.errors import FormatError
from agent.sensors.gpu import GpuReading

log = logging.getLogger(__name__)

DRI_PREFIX = "/dev/dri/"


class ProcFs(Protocol):
    """The two /proc reads this source makes; PermissionError and FileNotFoundError pass through."""

    def dri_fds(self, pid: int) -> list[int]: ...
    def fdinfo(self, pid: int, fd: int) -> bytes: ...


class LinuxProcFs:
    def __init__(self, root: Path = Path("/proc")) -> None:
        self.root = root

    def dri_fds(self, pid: int) -> list[int]:
        """The process's fds open on a DRM node; listing another user's fds needs ptrace access."""
        found = []
        with os.scandir(self.root / str(pid) / "fd") as entries:
            for entry in entries:
                try:
                    target = os.readlink(entry.path)
                except FileNotFoundError:  # closed since the listing
                    continue
                if target.startswith(DRI_PREFIX) and entry.name.isdigit():
                    found.append(int(entry.name))
        return found

    def fdinfo(self, pid: int, fd: int) -> bytes:
        with open(self.root / str(pid) / "fdinfo" / str(fd), "rb") as handle:
            return handle.read(MAX_FDINFO_BYTES + 1)


class DrmSource:
    def __init__(self, *, procfs: ProcFs, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self._procfs = procfs
        self._clock = clock
        # pid -> (when, its clients at their monotonic baselines) from the previous reading
        self._previous: dict[int, tuple[int, dict[DrmKey, DrmClient]]] = {}

    def read(self, pids: Collection[int]) -> GpuReading:
        gaps: list[str] = []
        samples: dict[int, GpuSample] = {}
        previous, self._previous = self._previous, {}
        now = self._clock()  # one instant for the whole reading: its /proc reads take microseconds
        for pid in pids:
            clients = self._clients(pid, gaps)
            if clients is None:
                continue
            when, before = previous.get(pid, (None, {}))
            sample = drm_sample(pid, clients, before, None if when is None else now - when)
            if sample is not None:
                samples[pid] = sample
            baselines = {
                k: drm_baseline(before[k], c) if k in before else c for k, c in clients.items()
            }
            self._previous[pid] = (now, baselines)
        return GpuReading(samples, available=True, permission_gaps=tuple(gaps))

    def _clients(self, pid: int, gaps: list[str]) -> dict[DrmKey, DrmClient] | None:
        try:
            fds = self._procfs.dri_fds(pid)
        except PermissionError:
            gaps.append(f"/proc/{pid}/fd: permission denied")
            return None
        except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
            return None  # the process has exited
        clients: dict[DrmKey, DrmClient] = {}
        for fd in fds:
            client = self._client(pid, fd, gaps)
            if client is not None:
                clients.setdefault(drm_key(client, fd), client)
        return clients

    def _client(self, pid: int, fd: int, gaps: list[str]) -> DrmClient | None:
        try:
            return parse_drm_fdinfo(self._procfs.fdinfo(pid, fd))
        except PermissionError:
            gaps.append(f"/proc/{pid}/fdinfo/{fd}: permission denied")
        except FileNotFoundError:
            pass  # closed, or the process exited, since the listing
        except FormatError as error:
            log.warning("/proc/%d/fdinfo/%d: %s", pid, fd, error)
        return None


def render_nodes(dev_root: Path = Path(DRI_PREFIX)) -> list[str]:
    """DRM render nodes, one per GPU with a kernel driver; none in most VMs and containers."""
    try:
        return sorted(name for name in os.listdir(dev_root) if name.startswith("renderD"))
    except OSError:
        return []


def open_default(dev_root: Path = Path(DRI_PREFIX), proc: Path = Path("/proc")) -> DrmSource | None:
    return DrmSource(procfs=LinuxProcFs(proc)) if render_nodes(dev_root) else None
