"""Apple: `ioreg -a` accelerator plists (devices, user clients, GPU time) and the physical
footprint proc_pid_rusage reports."""

from __future__ import annotations

import plistlib
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.detect.gpu.sample import ratio
from agent.errors import FormatError

MAX_IOREG_BYTES = 16 << 20
_CREATOR = re.compile(r"pid (\d{1,10}), ?(.*)", re.DOTALL)
_RUSAGE_FOOTPRINT = struct.Struct("<Q")
RUSAGE_FOOTPRINT_OFFSET = 72  # ri_phys_footprint after ri_uuid[16] and seven uint64 fields


@dataclass(frozen=True)
class AppleClient:
    """An accelerator user client: one Metal (or OpenCL) device opened by a process."""

    pid: int
    name: str
    entry_id: int | None
    gpu_time_ns: int | None  # accumulatedGPUTime, where this macOS publishes it


@dataclass(frozen=True)
class AppleAccelerator:
    device: str
    unified: bool  # Apple silicon (AGX): GPU memory is the processes' own unified memory
    utilization: float | None
    in_use_memory: int | None
    alloc_memory: int | None
    clients: tuple[AppleClient, ...]


@dataclass(frozen=True)
class AppleProcessTime:
    clients: frozenset[int]
    gpu_time_ns: int | None
    device: str
    unified: bool


def parse_ioreg_accelerators(data: bytes) -> list[AppleAccelerator]:
    """`ioreg -r -d 2 -w 0 -c IOAccelerator -a`: every accelerator and its user clients."""
    if len(data) > MAX_IOREG_BYTES:
        raise FormatError("ioreg-plist", MAX_IOREG_BYTES, "larger than any accelerator listing")
    if data.lstrip()[:6] not in (b"<?xml ", b"<!DOCT", b"<plist"):
        raise FormatError("ioreg-plist", 0, "not an XML property list")
    try:
        root = plistlib.loads(data, fmt=plistlib.FMT_XML)
    except Exception as err:  # plistlib raises many types on bad XML; all of them mean "bad"
        raise FormatError("ioreg-plist", 0, f"unreadable plist: {err}") from None
    entries = root if isinstance(root, list) else [root]
    if not all(isinstance(entry, dict) for entry in entries):
        raise FormatError("ioreg-plist", 0, "the root is not a list of registry entries")
    return [_accelerator(entry) for entry in entries]


def _accelerator(entry: dict[str, Any]) -> AppleAccelerator:
    stats = entry.get("PerformanceStatistics")
    stats = stats if isinstance(stats, dict) else {}
    io_class = _text(entry.get("IOClass")) or _text(entry.get("IOObjectClass")) or "IOAccelerator"
    busy = _count(stats.get("Device Utilization %"))
    children = entry.get("IORegistryEntryChildren")
    clients = (
        [_client(c) for c in children if isinstance(c, dict)] if isinstance(children, list) else []
    )
    return AppleAccelerator(
        device=_text(entry.get("model")) or io_class,
        unified=io_class.startswith("AGX"),
        utilization=None if busy is None else min(1.0, busy / 100),
        in_use_memory=_count(stats.get("In use system memory")),
        alloc_memory=_count(stats.get("Alloc system memory")),
        clients=tuple(c for c in clients if c is not None),
    )


def _client(entry: dict[str, Any]) -> AppleClient | None:
    creator = _CREATOR.fullmatch(_text(entry.get("IOUserClientCreator")) or "")
    if creator is None:
        return None
    # Intel Macs put accumulatedGPUTime on the client; Apple silicon has one AppUsage entry per API.
    gpu_time = _count(entry.get("accumulatedGPUTime"))
    usage = entry.get("AppUsage")
    if gpu_time is None and isinstance(usage, list):
        times = [_count(u.get("accumulatedGPUTime")) for u in usage if isinstance(u, dict)]
        known = [t for t in times if t is not None]
        gpu_time = sum(known) if known else None
    entry_id = _count(entry.get("IORegistryEntryID"))
    return AppleClient(int(creator[1]), creator[2].strip(), entry_id, gpu_time)


def _text(value: object) -> str | None:
    if isinstance(value, bytes):  # some registries keep strings as NUL-terminated data
        value = value.split(b"\0", 1)[0].decode("utf-8", "replace")
    return value.strip() or None if isinstance(value, str) else None


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def apple_process_times(accelerators: Sequence[AppleAccelerator]) -> dict[int, AppleProcessTime]:
    """Per pid: which user clients it holds and their GPU time summed (None if none publish it)."""
    found: dict[int, AppleProcessTime] = {}
    for index, accel in enumerate(accelerators):
        for n, client in enumerate(accel.clients):
            # Without a registry id a client is known by its place in the listing.
            ident = client.entry_id if client.entry_id is not None else -(index << 20 | n) - 1
            mine = AppleProcessTime(
                frozenset({ident}), client.gpu_time_ns, accel.device, accel.unified
            )
            before = found.get(client.pid)
            found[client.pid] = mine if before is None else _add_times(before, mine)
    return found


def _add_times(a: AppleProcessTime, b: AppleProcessTime) -> AppleProcessTime:
    times = [t for t in (a.gpu_time_ns, b.gpu_time_ns) if t is not None]
    return AppleProcessTime(
        a.clients | b.clients, sum(times) if times else None, a.device, a.unified or b.unified
    )


def apple_utilization(
    previous: AppleProcessTime | None, current: AppleProcessTime, interval_ns: int
) -> float | None:
    """GPU time over wall time; unknown when a client came or went, since its time moved with it."""
    if previous is None or previous.clients != current.clients:
        return None
    if previous.gpu_time_ns is None or current.gpu_time_ns is None:
        return None
    return ratio(max(0, current.gpu_time_ns - previous.gpu_time_ns), interval_ns)


def phys_footprint_from_rusage(buffer: bytes) -> int:
    """ri_phys_footprint from a struct rusage_info_v0 (or later) that proc_pid_rusage filled."""
    end = RUSAGE_FOOTPRINT_OFFSET + _RUSAGE_FOOTPRINT.size
    if len(buffer) < end:
        raise FormatError("rusage", len(buffer), f"shorter than rusage_info_v0 ({end} bytes)")
    return int(_RUSAGE_FOOTPRINT.unpack_from(buffer, RUSAGE_FOOTPRINT_OFFSET)[0])
