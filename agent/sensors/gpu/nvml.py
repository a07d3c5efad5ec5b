"""NVIDIA GPU memory and SM utilization per process through NVML (the nvidia-ml-py bindings).

The NVML module is injected: production passes `pynvml`, tests a fake returning recorded structures.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Collection, Sequence
from functools import partial
from typing import Protocol, TypeVar, cast

from agent.detect.gpu import (
    NVML_ERROR_NO_PERMISSION,
    NVML_ERROR_NOT_FOUND,
    GpuSample,
    NvmlProcessInfo,
    NvmlUtilizationSample,
    merge_samples,
    nvml_error_name,
    nvml_memory,
    nvml_utilization,
)
from agent.sensors.gpu import GpuReading

log = logging.getLogger(__name__)
T = TypeVar("T")

# nvmlInit fails this way where there is no NVIDIA GPU: no library, or no kernel driver.
_ABSENT = {9, 12}  # NVML_ERROR_DRIVER_NOT_LOADED, NVML_ERROR_LIBRARY_NOT_FOUND


class NvmlApi(Protocol):
    """The calls of the pynvml module this source makes, under pynvml's names."""

    NVMLError: type[Exception]

    def nvmlInit(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int) -> object: ...
    def nvmlDeviceGetName(self, handle: object) -> str | bytes: ...
    def nvmlDeviceGetComputeRunningProcesses(self, handle: object) -> Sequence[NvmlProcessInfo]: ...
    def nvmlDeviceGetGraphicsRunningProcesses(
        self, handle: object
    ) -> Sequence[NvmlProcessInfo]: ...
    def nvmlDeviceGetProcessUtilization(
        self, handle: object, timeStamp: int
    ) -> Sequence[NvmlUtilizationSample]: ...


def _code(error: Exception) -> object:
    return getattr(error, "value", None)  # pynvml's NVMLError carries the NVML return code


class NvmlSource:
    """Reads every NVIDIA device through an NVML that nvmlInit has already succeeded on."""

    def __init__(self, nvml: NvmlApi, *, init_gap: str | None = None) -> None:
        self._nvml = nvml
        self._init_gap = init_gap  # nvmlInit refused us: every reading reports it
        self._last_seen: dict[int, int] = {}  # device index -> newest utilization timestamp (µs)

    def read(self, pids: Collection[int]) -> GpuReading:
        if self._init_gap is not None:
            return GpuReading({}, available=True, permission_gaps=(self._init_gap,))
        gaps: list[str] = []
        count = self._attempt(self._nvml.nvmlDeviceGetCount, "device count", gaps) or 0
        samples: dict[int, GpuSample] = {}
        for index in range(count):
            for pid, sample in self._device(index, gaps).items():
                if pid in pids:
                    samples[pid] = merge_samples(samples[pid], sample) if pid in samples else sample
        return GpuReading(samples, available=True, permission_gaps=tuple(gaps))

    def _device(self, index: int, gaps: list[str]) -> dict[int, GpuSample]:
        nvml = self._nvml
        handle = self._attempt(lambda: nvml.nvmlDeviceGetHandleByIndex(index), f"GPU {index}", gaps)
        if handle is None:
            return {}
        name = self._attempt(lambda: nvml.nvmlDeviceGetName(handle), f"GPU {index} name", gaps)
        device = name.decode("utf-8", "replace") if isinstance(name, bytes) else name
        infos: list[NvmlProcessInfo] = []
        for kind, call in (
            ("compute", nvml.nvmlDeviceGetComputeRunningProcesses),
            ("graphics", nvml.nvmlDeviceGetGraphicsRunningProcesses),
        ):
            infos += self._attempt(partial(call, handle), f"GPU {index} {kind}", gaps) or []
        memory = nvml_memory(infos)
        busy = self._utilization(index, handle, gaps)
        return {
            pid: GpuSample(pid, used, busy.get(pid, 0.0) if busy is not None else None, device)
            for pid, used in memory.items()
        }

    def _utilization(
        self, index: int, handle: object, gaps: list[str]
    ) -> dict[int, float | None] | None:
        """SM share per pid since the last reading; None where this device cannot tell."""
        try:
            found = self._nvml.nvmlDeviceGetProcessUtilization(
                handle, self._last_seen.get(index, 0)
            )
        except self._nvml.NVMLError as error:
            if _code(error) == NVML_ERROR_NOT_FOUND:
                return {}  # no process was busy since the last reading: all idle, a real zero
            self._note(error, f"GPU {index} utilization", gaps)
            return None
        shares, self._last_seen[index] = nvml_utilization(found, self._last_seen.get(index, 0))
        return shares

    def _attempt(self, call: Callable[[], T], what: str, gaps: list[str]) -> T | None:
        try:
            return call()
        except self._nvml.NVMLError as error:
            self._note(error, what, gaps)
            return None

    @staticmethod
    def _note(error: Exception, what: str, gaps: list[str]) -> None:
        name = nvml_error_name(_code(error))
        if _code(error) == NVML_ERROR_NO_PERMISSION:
            gaps.append(f"nvml: {name} ({what})")
        else:  # NOT_SUPPORTED (older GPUs, vGPU), GPU_IS_LOST, ...: the field stays absent
            log.debug("nvml: %s: %s", what, name)


def open_nvml(nvml: NvmlApi) -> NvmlSource | None:
    """Initialise NVML once; None when this machine has no NVIDIA library or driver."""
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as error:
        if _code(error) in _ABSENT:
            return None
        name = nvml_error_name(_code(error))
        if _code(error) == NVML_ERROR_NO_PERMISSION:
            return NvmlSource(nvml, init_gap=f"nvml: {name} (nvmlInit)")
        log.warning("nvml: nvmlInit failed: %s; NVIDIA GPU fields will be absent", name)
        return None
    return NvmlSource(nvml)


def load_pynvml() -> NvmlApi | None:
    """The nvidia-ml-py module, or None where it is not installed (it has no type stubs)."""
    try:
        return cast(NvmlApi, importlib.import_module("pynvml"))
    except ImportError:
        return None


def open_default() -> NvmlSource | None:
    nvml = load_pynvml()
    return None if nvml is None else open_nvml(nvml)
