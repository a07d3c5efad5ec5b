"""What the GPU sources say about each process: DRM fdinfo text, NVML process structures, ioreg
accelerator plists, proc_pid_rusage bytes and Windows PDH counters, turned into GpuSample values.

Pure: the shells in agent.sensors.gpu read the OS and hand the bytes and structures in.
"""

from __future__ import annotations

import csv
import io
import math
import plistlib
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.errors import FormatError

MAX_FDINFO_BYTES = 64 << 10
MAX_IOREG_BYTES = 16 << 20
MAX_TYPEPERF_BYTES = 16 << 20
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
class GpuSample:
    pid: int
    memory_bytes: int | None  # device (or unified) memory attributed to the process
    utilization: float | None  # 0..1 share of the engine(s) over the sample window
    device: str | None  # e.g. "NVIDIA RTX 4090", "amdgpu 0000:03:00.0", "Apple M3 Max"


def merge_samples(a: GpuSample, b: GpuSample) -> GpuSample:
    """One process seen by two sources or on two devices: memory adds up, the busier one counts."""
    memory = None if a.memory_bytes is None and b.memory_bytes is None else 0
    if memory is not None:
        memory = (a.memory_bytes or 0) + (b.memory_bytes or 0)
    busy = [u for u in (a.utilization, b.utilization) if u is not None]
    names = [name for d in (a.device, b.device) if d for name in d.split(", ")]
    device = ", ".join(dict.fromkeys(names)) or None
    return GpuSample(a.pid, memory, max(busy) if busy else None, device)


def _ratio(busy: float, window: float) -> float | None:
    return None if window <= 0 else min(1.0, max(0.0, busy / window))


# ---- Linux DRM fdinfo (Documentation/gpu/drm-usage-stats.rst) ----


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
            share = _ratio(max(0, busy - previous.engines_ns[name]), window)
            shares += [] if share is None else [share]
    for name, busy in current.cycles.items():
        if name in previous.cycles and name in current.total_cycles.keys() & previous.total_cycles:
            total = current.total_cycles[name] - previous.total_cycles[name]
            window = total * current.capacity.get(name, 1)
            share = _ratio(max(0, busy - previous.cycles[name]), window)
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


# ---- NVIDIA NVML (nvml.h: nvmlProcessInfo_t, nvmlProcessUtilizationSample_t) ----

NVML_VALUE_NOT_AVAILABLE = 0xFFFFFFFFFFFFFFFF  # usedGpuMemory under WDDM, where the OS owns memory
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
_NVML_ERRORS = {
    1: "UNINITIALIZED",
    2: "INVALID_ARGUMENT",
    3: "NOT_SUPPORTED",
    4: "NO_PERMISSION",
    5: "ALREADY_INITIALIZED",
    6: "NOT_FOUND",
    7: "INSUFFICIENT_SIZE",
    9: "DRIVER_NOT_LOADED",
    10: "TIMEOUT",
    12: "LIBRARY_NOT_FOUND",
    13: "FUNCTION_NOT_FOUND",
    15: "GPU_IS_LOST",
    17: "OPERATING_SYSTEM",
    18: "LIB_RM_VERSION_MISMATCH",
    999: "UNKNOWN",
}


# Field names are NVML's own (nvml.h), as the bindings' ctypes structures carry them.
class NvmlProcessInfo(Protocol):
    @property
    def pid(self) -> int: ...
    @property
    def usedGpuMemory(self) -> int | None: ...


class NvmlUtilizationSample(Protocol):
    @property
    def pid(self) -> int: ...
    @property
    def timeStamp(self) -> int: ...
    @property
    def smUtil(self) -> int: ...


def nvml_error_name(code: object) -> str:
    name = _NVML_ERRORS.get(code) if isinstance(code, int) else None
    return f"NVML_ERROR_{name}" if name else f"NVML error {code}"


def nvml_memory(infos: Iterable[NvmlProcessInfo]) -> dict[int, int | None]:
    """Bytes per pid on one device. A pid listed as compute and graphics ("C+G") is one process
    with one number, so the lists meet by max, not sum; not-available stays None."""
    found: dict[int, int | None] = {}
    for info in infos:
        used = info.usedGpuMemory
        if used == NVML_VALUE_NOT_AVAILABLE or (used is not None and used < 0):
            used = None
        before = found.get(info.pid)
        found[info.pid] = used if before is None else max(before, used or 0)
    return found


def nvml_utilization(
    samples: Iterable[NvmlUtilizationSample], last_seen: int
) -> tuple[dict[int, float | None], int]:
    """SM share per pid from its newest sample after last_seen (microseconds), and the new mark.
    NVML lists only processes that were busy, so a running pid missing here was idle."""
    newest: dict[int, NvmlUtilizationSample] = {}
    for sample in samples:
        if sample.timeStamp > last_seen and (
            sample.pid not in newest or sample.timeStamp > newest[sample.pid].timeStamp
        ):
            newest[sample.pid] = sample
    mark = max((s.timeStamp for s in newest.values()), default=last_seen)
    # Past 100 is NVML's not-available marker (0xFFFFFFFF), not a busy GPU.
    shares = {pid: s.smUtil / 100 if 0 <= s.smUtil <= 100 else None for pid, s in newest.items()}
    return shares, mark


# ---- Apple: ioreg -a accelerator plists, proc_pid_rusage ----

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
    return _ratio(max(0, current.gpu_time_ns - previous.gpu_time_ns), interval_ns)


def phys_footprint_from_rusage(buffer: bytes) -> int:
    """ri_phys_footprint from a struct rusage_info_v0 (or later) that proc_pid_rusage filled."""
    end = RUSAGE_FOOTPRINT_OFFSET + _RUSAGE_FOOTPRINT.size
    if len(buffer) < end:
        raise FormatError("rusage", len(buffer), f"shorter than rusage_info_v0 ({end} bytes)")
    return int(_RUSAGE_FOOTPRINT.unpack_from(buffer, RUSAGE_FOOTPRINT_OFFSET)[0])


# ---- Windows PDH: GPU Process Memory and GPU Engine counters ----

_PDH_PATH = re.compile(
    r"(?:\\\\[^\\]+)?\\(GPU Process Memory|GPU Engine)\((.*)\)\\"
    r"(Dedicated Usage|Shared Usage|Utilization Percentage)",
    re.DOTALL,
)
_PDH_INSTANCE = re.compile(
    r"pid_(\d{1,10})_luid_(0x[0-9A-Fa-f]{1,8}_0x[0-9A-Fa-f]{1,8})_phys_(\d{1,4})"
    r"(?:_eng_(\d{1,4})_engtype_([^#]{0,64}))?(?:#\d{1,6})?",
    re.DOTALL,
)


@dataclass(frozen=True)
class PdhCounter:
    counter: str  # Dedicated Usage, Shared Usage, Utilization Percentage
    pid: int
    adapter: str  # "luid 0x00000000_0x0000D3E8 phys 0"
    engine: str | None  # "eng 0 3D" for a GPU Engine counter


def parse_pdh_counter(path: str) -> PdhCounter | None:
    """A counter path's meaning; None when it is not one of the GPU counters read here."""
    match = _PDH_PATH.fullmatch(path)
    if match is None:
        return None
    obj, instance, counter = match.groups()
    parts = _PDH_INSTANCE.fullmatch(instance)
    if parts is None or (obj == "GPU Engine") != (parts[4] is not None):
        raise FormatError(
            "pdh-counter", path.find("(") + 1, f"unexpected instance {instance[:80]!r}"
        )
    if (obj == "GPU Engine") != (counter == "Utilization Percentage"):
        raise FormatError("pdh-counter", match.start(3), f"{obj} has no {counter!r} counter")
    engine = None if parts[4] is None else f"eng {parts[4]} {parts[5]}"
    return PdhCounter(counter, int(parts[1]), f"luid {parts[2]} phys {parts[3]}", engine)


def parse_typeperf_csv(data: bytes) -> list[tuple[str, float | None]]:
    """`typeperf COUNTER... -sc 1` output: each counter path with its one value (None if blank)."""
    if len(data) > MAX_TYPEPERF_BYTES:
        raise FormatError("typeperf-csv", MAX_TYPEPERF_BYTES, "larger than any counter listing")
    # typeperf writes the console's code page; PowerShell's redirection writes UTF-16.
    encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8"
    text = data.decode(encoding, "replace").replace("\0", "")
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
    except csv.Error as err:
        raise FormatError("typeperf-csv", 0, f"not CSV: {err}") from None
    header = next((i for i, row in enumerate(rows) if row[0].startswith("(PDH-CSV")), None)
    if header is None:
        raise FormatError("typeperf-csv", 0, "no (PDH-CSV 4.0) header row")
    paths = rows[header][1:]
    values = next((row for row in rows[header + 1 :] if len(row) == len(paths) + 1), None)
    if values is None:
        raise FormatError("typeperf-csv", len(data), "no sample row matches the header")
    return [(path, _pdh_value(value)) for path, value in zip(paths, values[1:], strict=True)]


def _pdh_value(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def pdh_samples(
    values: Iterable[tuple[str, float | None]],
) -> tuple[dict[int, GpuSample], list[str]]:
    """Per pid: dedicated plus shared GPU memory, and the busiest engine's percentage summed over
    the pid's instances of it (Task Manager's GPU column). Unreadable counters are listed."""
    memory: dict[int, float] = {}
    engines: dict[int, dict[tuple[str, str], float]] = {}
    adapters: dict[int, dict[str, None]] = {}
    problems: list[str] = []
    for path, value in values:
        try:
            counter = parse_pdh_counter(path)
        except FormatError as err:
            problems.append(str(err))
            continue
        if counter is None or value is None or not (math.isfinite(value) and value >= 0):
            continue  # another counter, an instance gone between collections, or no number
        adapters.setdefault(counter.pid, {})[counter.adapter] = None
        if counter.engine is None:
            memory[counter.pid] = memory.get(counter.pid, 0.0) + value
        else:
            busy = engines.setdefault(counter.pid, {})
            key = (counter.adapter, counter.engine)
            busy[key] = busy.get(key, 0.0) + value
    samples = {
        pid: GpuSample(
            pid,
            round(memory[pid]) if pid in memory else None,
            min(1.0, max(engines[pid].values()) / 100) if engines.get(pid) else None,
            ", ".join(names),
        )
        for pid, names in adapters.items()
    }
    return samples, problems
