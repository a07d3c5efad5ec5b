"""The NVML source against a fake NVML module that answers with recorded structures (nvml.h layouts
as pynvml defines them) and raises pynvml's own error classes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pynvml  # type: ignore[import-untyped]
import pytest

from agent.detect.gpu import GpuSample
from agent.sensors.gpu.nvml import NvmlSource, load_pynvml, open_nvml

RECORDINGS = Path(__file__).parents[2] / "detect" / "gpu_recordings"


def error(name: str) -> Exception:
    err: Exception = pynvml.NVMLError(getattr(pynvml, name))
    return err


class RecordedNvml:
    """pynvml's calls, answered from one recording: lists of ctypes structures or an error."""

    NVMLError = pynvml.NVMLError

    def __init__(self, name: str, *, init_error: str | None = None, convert: bool = True) -> None:
        self.devices: list[dict[str, Any]] = json.loads((RECORDINGS / name).read_text())["devices"]
        self.init_error = init_error
        self.convert = convert  # pynvml >= 11 turns WDDM's not-available into None
        self.timestamps: list[int] = []

    def nvmlInit(self) -> None:
        if self.init_error:
            raise error(self.init_error)

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> object:
        return index  # pynvml's is a c_nvmlDevice_t pointer; only its identity matters here

    def nvmlDeviceGetName(self, handle: object) -> str:
        return str(self._answer(handle, "name"))

    def _answer(self, handle: object, kind: str) -> Any:
        assert isinstance(handle, int)
        recorded = self.devices[handle][kind]
        if isinstance(recorded, dict):
            raise error(recorded["error"])
        return recorded

    def _processes(self, handle: object, kind: str) -> list[Any]:
        processes = []
        for fields in self._answer(handle, kind):
            struct = pynvml.c_nvmlProcessInfo_t(**fields)
            if self.convert:
                struct = pynvml.nvmlStructToFriendlyObject(struct)
                if struct.usedGpuMemory == pynvml.NVML_VALUE_NOT_AVAILABLE_ulonglong.value:
                    struct.usedGpuMemory = None
            processes.append(struct)
        return processes

    def nvmlDeviceGetComputeRunningProcesses(self, handle: object) -> list[Any]:
        return self._processes(handle, "compute")

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: object) -> list[Any]:
        return self._processes(handle, "graphics")

    def nvmlDeviceGetProcessUtilization(self, handle: object, timeStamp: int) -> Any:
        self.timestamps.append(timeStamp)
        samples = self._answer(handle, "utilization")
        found = [pynvml.c_nvmlProcessUtilizationSample_t(**s) for s in samples]
        found = [s for s in found if s.timeStamp > timeStamp]  # as the driver filters
        if not found:
            raise error("NVML_ERROR_NOT_FOUND")
        return found


def test_two_gpus_memory_adds_up_and_the_busier_share_counts() -> None:
    source = open_nvml(RecordedNvml("nvml_linux_2x4090.json"))
    assert source is not None
    reading = source.read({48213, 2154, 999})
    assert reading.available and reading.permission_gaps == ()
    assert reading.samples == {
        48213: GpuSample(48213, 11886657536 + 9663676416, 0.87, "NVIDIA GeForce RTX 4090"),
        2154: GpuSample(2154, 139460608, 0.02, "NVIDIA GeForce RTX 4090"),
    }


def test_the_next_reading_asks_only_for_newer_samples() -> None:
    nvml = RecordedNvml("nvml_linux_2x4090.json")
    source = NvmlSource(nvml)
    source.read({48213})
    second = source.read({48213, 1873})
    assert nvml.timestamps == [0, 0, 1732268130123456, 0]
    # Nothing newer on either GPU: NVML lists busy processes only, so these were idle.
    assert second.samples[48213].utilization == 0.0
    assert second.samples[1873] == GpuSample(1873, 427819008, 0.0, "NVIDIA GeForce RTX 4090")


@pytest.mark.parametrize("convert", [True, False])
def test_wddm_memory_and_unsupported_utilization_stay_absent(convert: bool) -> None:
    source = NvmlSource(RecordedNvml("nvml_windows_wddm.json", convert=convert))
    reading = source.read({9020, 1188})
    laptop = "NVIDIA GeForce RTX 4070 Laptop GPU"
    assert reading.samples == {
        9020: GpuSample(9020, None, None, laptop),
        1188: GpuSample(1188, None, None, laptop),
    }
    assert reading.permission_gaps == ()


def test_refused_process_queries_are_permission_gaps() -> None:
    reading = NvmlSource(RecordedNvml("nvml_no_permission.json")).read({1, 2})
    assert reading.available and reading.samples == {}
    assert reading.permission_gaps == (
        "nvml: NVML_ERROR_NO_PERMISSION (GPU 0 compute)",
        "nvml: NVML_ERROR_NO_PERMISSION (GPU 0 graphics)",
        "nvml: NVML_ERROR_NO_PERMISSION (GPU 0 utilization)",
    )


@pytest.mark.parametrize(
    "absent", ["NVML_ERROR_LIBRARY_NOT_FOUND", "NVML_ERROR_DRIVER_NOT_LOADED", "NVML_ERROR_UNKNOWN"]
)
def test_no_library_or_driver_means_no_nvml_source(absent: str) -> None:
    assert open_nvml(RecordedNvml("nvml_linux_2x4090.json", init_error=absent)) is None


def test_a_refused_init_is_reported_on_every_reading() -> None:
    nvml = RecordedNvml("nvml_linux_2x4090.json", init_error="NVML_ERROR_NO_PERMISSION")
    source = open_nvml(nvml)
    assert source is not None
    reading = source.read({48213})
    assert (reading.available, reading.samples) == (True, {})
    assert reading.permission_gaps == ("nvml: NVML_ERROR_NO_PERMISSION (nvmlInit)",)


def test_the_real_pynvml_opens_only_where_an_nvidia_driver_is() -> None:
    nvml = load_pynvml()
    assert nvml is not None
    source = open_nvml(nvml)  # None here: no libnvidia-ml.so.1 on the CI machines
    assert source is None or source.read({1}).available
