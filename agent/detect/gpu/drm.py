"""Linux DRM fdinfo (Documentation/gpu/drm-usage-stats.rst): one client per fd, and the
memory and engine share of a process's clients."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.detect.gpu.sample import GpuSample, ratio
from agent.errors import FormatError

MAX_FDINFO_BYTES = 64 << 10
_UINT = re.compile(r"[0-9]{1,20}")
_SIZE_UNITS = {"": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
# Memory stats in drm-usage-stats.rst order of preference: resident is what the buffers occupy now
# (amdgpu's deprecated drm-memory-<region> is its alias), total counts allocations never backed.
_MEMORY_STATS = ("resident", "memory", "total")
_OTHER_MEMORY_STATS = ("shared", "purgeable", "active")
# amdgpu's "cpu" domain holds buffers the GPU cannot reach; the rest are GPU memory, device-local
# (vram, local0) or GPU-mapped system memory (gtt, system0), where integrated GPUs keep a model.
_NOT_GPU_REGIONS = frozenset({"cpu"})


@dataclass(frozen=True)
class DrmClient:
    """One DRM client (a struct drm_file) as one /proc/<pid>/fdinfo/<fd> shows it."""

    driver: str
    pdev: str | None = None
    client_id: int | None = None
    engines_ns: Mapping[str, int] = field(default_factory=dict)  # drm-engine-<name>
    capacity: Mapping[str, int] = field(default_factory=dict)  # drm-engine-capacity-<name>
    cycles: Mapping[str, int] = field(default_factory=dict)  # drm-cycles-<name> (xe)
    total_cycles: Mapping[str, int] = field(default_factory=dict)  # drm-total-cycles-<name>
    memory: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # stat -> region -> B

    @property
    def device(self) -> str:
        return f"{self.driver} {self.pdev}" if self.pdev else self.driver

    def has_stats(self) -> bool:
        """False for drivers that name themselves but publish no usage (nvidia-drm)."""
        return bool(self.engines_ns or self.cycles or self.memory)


DrmKey = tuple[str, str, str]  # driver, pdev, client id (or "fd N" where the id is missing)


def parse_drm_fdinfo(data: bytes) -> DrmClient | None:
    """The DRM client in one fdinfo file; None when the fd is not a DRM client."""
    if len(data) > MAX_FDINFO_BYTES:
        raise FormatError("drm-fdinfo", MAX_FDINFO_BYTES, "longer than any fdinfo")
    fields: dict[str, Any] = {"engines_ns": {}, "capacity": {}, "cycles": {}, "total_cycles": {}}
    memory: dict[str, dict[str, int]] = {}
    offset = 0
    for raw in data.split(b"\n"):
        line = raw.decode("utf-8", "replace")
        if line.startswith("drm-"):
            _drm_line(line, offset, fields, memory)
        offset += len(raw) + 1
    driver = fields.pop("driver", None)
    if driver is None:
        return None
    return DrmClient(driver=driver, memory=memory, **fields)


def _drm_line(line: str, offset: int, fields: dict[str, Any], memory: dict[str, Any]) -> None:
    key, sep, value = line.partition(":")
    value = value.strip()
    if not sep or not key or any(c.isspace() for c in key):
        raise FormatError("drm-fdinfo", offset, f"not a 'drm-key: value' line: {line[:80]!r}")
    if key in ("drm-driver", "drm-pdev"):
        if not value or (key == "drm-pdev" and any(c.isspace() for c in value)):
            raise FormatError("drm-fdinfo", offset, f"{key}: {value[:40]!r} names no device")
        fields[key[4:]] = value
        return
    if key == "drm-client-id":
        fields["client_id"] = _uint(value, "", offset, key)
        return
    for prefix, name, unit in _COUNTERS:
        if key.startswith(prefix):
            count = _uint(value, unit, offset, key)
            if name == "capacity" and count == 0:
                raise FormatError("drm-fdinfo", offset, f"{key} is zero, which the spec forbids")
            fields[name][_suffix(key, prefix, offset)] = count
            return
    stat, dash, _ = key[4:].partition("-")
    if dash and stat in _MEMORY_STATS + _OTHER_MEMORY_STATS:
        region = _suffix(key, f"drm-{stat}-", offset)
        memory.setdefault(stat, {})[region] = _size(value, offset, key)


# Longer prefixes first: drm-engine-capacity-X is not an engine, drm-total-cycles-X not a region.
_COUNTERS = (
    ("drm-engine-capacity-", "capacity", None),
    ("drm-engine-", "engines_ns", "ns"),
    ("drm-total-cycles-", "total_cycles", None),
    ("drm-cycles-", "cycles", None),
)


def _suffix(key: str, prefix: str, offset: int) -> str:
    if len(key) <= len(prefix):
        raise FormatError("drm-fdinfo", offset, f"{key} names no engine or region")
    return key[len(prefix) :]


def _uint(value: str, unit: str | None, offset: int, key: str) -> int:
    words = value.split()
    if not words or not _UINT.fullmatch(words[0]) or words[1:] not in ([], [unit]):
        raise FormatError("drm-fdinfo", offset, f"{key}: {value[:40]!r} is not a count")
    return int(words[0])


def _size(value: str, offset: int, key: str) -> int:
    words = value.split()
    unit = words[1] if len(words) == 2 else ""
    if not words or len(words) > 2 or not _UINT.fullmatch(words[0]) or unit not in _SIZE_UNITS:
        raise FormatError("drm-fdinfo", offset, f"{key}: {value[:40]!r} is not a size")
    return int(words[0]) * _SIZE_UNITS[unit]


def drm_key(client: DrmClient, fd: int) -> DrmKey:
    """Several fds may share one client (dup, fork); the spec's id tells them apart."""
    ident = f"fd {fd}" if client.client_id is None else str(client.client_id)
    return client.driver, client.pdev or "", ident


def drm_memory_bytes(client: DrmClient) -> int | None:
    regions: dict[str, int] = {}
    for stat in reversed(_MEMORY_STATS):  # the preferred stat overwrites the others
        regions.update(client.memory.get(stat, {}))
    counted = [size for region, size in regions.items() if region not in _NOT_GPU_REGIONS]
    return sum(counted) if counted else None


def drm_baseline(previous: DrmClient, current: DrmClient) -> DrmClient:
    """The spec lets counters step back for a while: keep the larger value until they catch up."""

    def larger(old: Mapping[str, int], new: Mapping[str, int]) -> dict[str, int]:
        return {name: max(value, old.get(name, 0)) for name, value in new.items()}

    return DrmClient(
        driver=current.driver,
        pdev=current.pdev,
        client_id=current.client_id,
        engines_ns=larger(previous.engines_ns, current.engines_ns),
        capacity=current.capacity,
        cycles=larger(previous.cycles, current.cycles),
        total_cycles=larger(previous.total_cycles, current.total_cycles),
        memory=current.memory,
    )


def drm_utilization(previous: DrmClient, current: DrmClient, interval_ns: int) -> float | None:
    """The busiest engine's share over the window, each engine group divided by its capacity."""
    shares: list[float] = []
    for name, busy in current.engines_ns.items():
        if name in previous.engines_ns:
            window = interval_ns * current.capacity.get(name, 1)
            share = ratio(max(0, busy - previous.engines_ns[name]), window)
            shares += [] if share is None else [share]
    for name, busy in current.cycles.items():
        if name in previous.cycles and name in current.total_cycles.keys() & previous.total_cycles:
            total = current.total_cycles[name] - previous.total_cycles[name]
            window = total * current.capacity.get(name, 1)
            share = ratio(max(0, busy - previous.cycles[name]), window)
            shares += [] if share is None else [share]
    return max(shares) if shares else None


def drm_sample(
    pid: int,
    current: Mapping[DrmKey, DrmClient],
    previous: Mapping[DrmKey, DrmClient],
    interval_ns: int | None,
) -> GpuSample | None:
    """A process's DRM clients, deduplicated by key, summed per device; None without usage stats."""
    clients = {key: c for key, c in current.items() if c.has_stats()}
    if not clients:
        return None
    sizes = [m for m in map(drm_memory_bytes, clients.values()) if m is not None]
    per_device: dict[str, float] = {}
    for key, client in clients.items():
        before = previous.get(key)
        if before is not None and interval_ns is not None:
            share = drm_utilization(before, client, interval_ns)
            if share is not None:
                per_device[client.device] = per_device.get(client.device, 0.0) + share
    busy = min(1.0, max(per_device.values())) if per_device else None
    devices = ", ".join(dict.fromkeys(c.device for c in clients.values()))
    return GpuSample(pid, sum(sizes) if sizes else None, busy, devices)
