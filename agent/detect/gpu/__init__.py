"""What the GPU sources say about each process: DRM fdinfo text, NVML process structures, ioreg
accelerator plists, proc_pid_rusage bytes and Windows PDH counters, turned into GpuSample values.

Pure: the shells in agent.sensors.gpu read the OS and hand the bytes and structures in.
"""

from agent.detect.gpu.apple import (
    AppleProcessTime,
    apple_process_times,
    apple_utilization,
    parse_ioreg_accelerators,
    phys_footprint_from_rusage,
)
from agent.detect.gpu.drm import (
    MAX_FDINFO_BYTES,
    DrmClient,
    DrmKey,
    drm_baseline,
    drm_key,
    drm_memory_bytes,
    drm_sample,
    drm_utilization,
    parse_drm_fdinfo,
)
from agent.detect.gpu.nvml import (
    NVML_ERROR_NO_PERMISSION,
    NVML_ERROR_NOT_FOUND,
    NVML_VALUE_NOT_AVAILABLE,
    NvmlProcessInfo,
    NvmlUtilizationSample,
    nvml_error_name,
    nvml_memory,
    nvml_utilization,
)
from agent.detect.gpu.pdh import parse_pdh_counter, parse_typeperf_csv, pdh_samples
from agent.detect.gpu.sample import GpuSample, merge_samples

__all__ = [
    "MAX_FDINFO_BYTES",
    "NVML_ERROR_NOT_FOUND",
    "NVML_ERROR_NO_PERMISSION",
    "NVML_VALUE_NOT_AVAILABLE",
    "AppleProcessTime",
    "DrmClient",
    "DrmKey",
    "GpuSample",
    "NvmlProcessInfo",
    "NvmlUtilizationSample",
    "apple_process_times",
    "apple_utilization",
    "drm_baseline",
    "drm_key",
    "drm_memory_bytes",
    "drm_sample",
    "drm_utilization",
    "merge_samples",
    "nvml_error_name",
    "nvml_memory",
    "nvml_utilization",
    "parse_drm_fdinfo",
    "parse_ioreg_accelerators",
    "parse_pdh_counter",
    "parse_typeperf_csv",
    "pdh_samples",
    "phys_footprint_from_rusage",
]
