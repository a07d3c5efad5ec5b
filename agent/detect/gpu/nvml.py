"""NVIDIA NVML (nvml.h: nvmlProcessInfo_t, nvmlProcessUtilizationSample_t): memory and SM
share per pid from the structures the bindings return, and NVML's error names."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

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
