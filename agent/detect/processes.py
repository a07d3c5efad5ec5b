"""Inference processes as events: the observation, its flat fields, and the lifecycle diff.

Pure: the process sensor reads /proc, psutil and sockets; this module parses what it read,
arranges the `shadowai.inference_process` fields and decides started / changed / stopped.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent.detect.exposure import Exposure, assess
from agent.detect.redact import redact_command_line

if TYPE_CHECKING:
    from agent.detect.runtimes import RuntimeMatch

DATASET = "shadowai.inference_process"
ProcessKey = tuple[int, float]  # pid, create time: a pid alone is reused
Fields = Mapping[str, object]
GpuUse = Mapping[int, tuple[int | None, float | None]]  # pid -> memory bytes, utilization
# Figures that move every scan: refreshed by snapshots, never a `changed` event on their own.
VOLATILE_FIELDS = frozenset(
    {
        "ai.gpu.memory_bytes",
        "ai.gpu.utilization",
        "ai.classifier.score",
        "ai.classifier.top_features",
    }
)
MAX_LISTED = 32  # libraries or models listed per event
PF_KTHREAD = 0x00200000


@dataclass(frozen=True)
class ProcessObservation:
    """One process as the sensor saw it; lists are sorted and deduplicated by the sensor."""

    pid: int
    create_time: float
    name: str
    exe: str | None = None
    cmdline: tuple[str, ...] = ()
    parent_name: str | None = None
    username: str | None = None
    libraries: tuple[str, ...] = ()  # mapped .so / .dylib / .dll / .node / .pyd
    mapped_files: tuple[str, ...] = ()  # other mapped regular files
    open_files: tuple[str, ...] = ()
    listeners: tuple[tuple[str, int], ...] = ()  # listening (address, port)
    env: Mapping[str, str] = field(default_factory=dict)  # the few variables read, redacted
    rss: int | None = None
    num_threads: int | None = None
    cpu_percent: float | None = None
    gpu: tuple[int | None, float | None] | None = None

    @property
    def key(self) -> ProcessKey:
        return (self.pid, self.create_time)


@dataclass(frozen=True)
class StatLine:
    """The fields of /proc/PID/stat that a steady-state scan needs."""

    pid: int
    name: str
    ppid: int
    flags: int
    cpu_ticks: int  # utime + stime
    num_threads: int
    start_ticks: int  # since boot
    vsize: int
    rss_pages: int

    @property
    def kernel_thread(self) -> bool:
        return bool(self.flags & PF_KTHREAD)


def parse_stat(data: bytes) -> StatLine | None:
    """/proc/PID/stat; None when it is cut short or malformed (the process died mid-read)."""
    head, sep, tail = data.rpartition(b")")
    pid_text, paren, name = head.partition(b" (")
    parts = tail.split()
    if not sep or not paren or len(parts) < 22:
        return None
    try:
        numbers = [int(parts[i]) for i in (1, 6, 11, 12, 17, 19, 20, 21)]
        pid = int(pid_text)
    except ValueError:
        return None
    ppid, flags, utime, stime, threads, start, vsize, rss = numbers
    return StatLine(
        pid=pid,
        name=name.decode("utf-8", "replace"),
        ppid=ppid,
        flags=flags,
        cpu_ticks=utime + stime,
        num_threads=threads,
        start_ticks=start,
        vsize=vsize,
        rss_pages=rss,
    )


_MAPS_PATH = re.compile(rb"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+ +(/[^\n]*)$", re.MULTILINE)
_LIBRARY = re.compile(r"(?i)\.(so(\.[\w.+-]*)?|dylib|dll|node|pyd)$")
_PSEUDO_PREFIXES = ("/dev/", "/memfd:", "/SYSV", "/proc/", "/sys/", "/run/")


def classify_mapped(paths: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(libraries, other files) among mapped file paths, each sorted without repeats."""
    libraries: set[str] = set()
    files: set[str] = set()
    for path in paths:
        path = path.removesuffix(" (deleted)")
        if path.startswith(_PSEUDO_PREFIXES):
            continue
        (libraries if _LIBRARY.search(path) else files).add(path)
    return tuple(sorted(libraries)), tuple(sorted(files))


def parse_maps(data: bytes) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """/proc/PID/maps -> (libraries, other mapped files); anonymous and pseudo mappings left out."""
    paths = {raw.decode("utf-8", "surrogateescape") for raw in _MAPS_PATH.findall(data)}
    return classify_mapped(sorted(paths))


def inference_process_fields(
    obs: ProcessObservation,
    match: RuntimeMatch,
    *,
    exposure: Exposure | None = None,
    gpu: GpuUse | None = None,
) -> dict[str, object]:
    """DESIGN.md's dotted fields for one inference process; absent values are left out.

    GPU figures come only from `gpu` (pid -> memory bytes, utilization) or the observation;
    a process with no sample gets no GPU fields, never zeros.
    """
    exposure = exposure or assess(match.name, obs.listeners, obs.cmdline, obs.env)
    candidates: dict[str, object | None] = {
        "event.dataset": DATASET,
        "process.pid": obs.pid,
        "process.name": obs.name,
        "process.executable": obs.exe,
        "process.command_line": redact_command_line(obs.cmdline) if obs.cmdline else None,
        "process.parent.name": obs.parent_name,
        "user.name": obs.username,
        "ai.runtime.name": match.name,
        "ai.runtime.version": match.version,
        "ai.runtime.libraries": list(match.libraries[:MAX_LISTED]) or None,
        "ai.runtime.models": list(match.models[:MAX_LISTED]) or None,
        "ai.listen.address": exposure.address,
        "ai.listen.port": exposure.port,
        "ai.listen.exposed": exposure.exposed,
        "ai.listen.exposure_reasons": list(exposure.reasons[:MAX_LISTED]) or None,
        "ai.runtime.evidence": list(match.evidence[:MAX_LISTED]) or None,
    }
    sample = gpu.get(obs.pid) if gpu is not None else obs.gpu
    if sample is not None:
        candidates["ai.gpu.memory_bytes"], candidates["ai.gpu.utilization"] = sample
    return {key: value for key, value in candidates.items() if value not in (None, "")}


def _stable(fields: Fields) -> dict[str, object]:
    return {key: value for key, value in fields.items() if key not in VOLATILE_FIELDS}


def lifecycle(
    previous: Mapping[ProcessKey, Fields],
    current: Mapping[ProcessKey, Fields],
    *,
    snapshot: bool = False,
) -> list[tuple[str, Fields]]:
    """(event.action, fields) for every inference process that stopped, started or changed.

    Stopped ones come first, so a reused pid reads as one process ending and another
    beginning. With `snapshot`, unchanged processes are reported too.
    """
    events: list[tuple[str, Fields]] = [
        ("stopped", fields) for key, fields in sorted(previous.items()) if key not in current
    ]
    for key, fields in sorted(current.items()):
        before = previous.get(key)
        if before is None:
            events.append(("started", fields))
        elif _stable(before) != _stable(fields):
            events.append(("changed", fields))
        elif snapshot:
            events.append(("snapshot", fields))
    return events


_NLMSG = struct.Struct("=IHHII")
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_DIAG_INODE_AT = 68  # in struct inet_diag_msg: 4 bytes, the 48-byte sockid, 4 words, inode


def parse_inet_diag(data: bytes) -> tuple[frozenset[int], bool]:
    """One netlink sock_diag reply buffer -> (socket inodes, whether the dump is complete).

    Raises ValueError for a message whose length breaks the buffer.
    """
    inodes: set[int] = set()
    offset = 0
    while offset + _NLMSG.size <= len(data):
        length, kind, _, _, _ = _NLMSG.unpack_from(data, offset)
        if length < _NLMSG.size or offset + length > len(data):
            raise ValueError(f"netlink message at byte {offset} claims {length} bytes")
        if kind in (_NLMSG_DONE, _NLMSG_ERROR):
            return frozenset(inodes), True
        body = offset + _NLMSG.size
        if length >= _NLMSG.size + _DIAG_INODE_AT + 4:
            inodes.add(
                int.from_bytes(data[body + _DIAG_INODE_AT : body + _DIAG_INODE_AT + 4], "little")
            )
        offset += (length + 3) & ~3
    return frozenset(inodes), False


def relook_due(
    *, vsize_changed: bool, runtime: bool, age: float, since_look: float, longest: float
) -> bool:
    """Whether a known process deserves another deep look this scan.

    Only a changed address space can mean new libraries or models. Runtimes are looked at
    again at once; other processes after a quarter of their age, at most `longest` seconds,
    so a young script that imports a runtime is seen soon and a long-lived browser rarely.
    """
    if not vsize_changed:
        return False
    return runtime or since_look >= min(longest, age / 4)


def cpu_percent(before: float | None, after: float | None, elapsed: float) -> float | None:
    """Percent of one core between two readings of a process's CPU seconds."""
    if before is None or after is None or elapsed <= 0:
        return None
    return round(100.0 * max(0.0, after - before) / elapsed, 1)
