"""GpuSample, what every GPU source reports per process, and the helpers the sources share."""

from __future__ import annotations

from dataclasses import dataclass


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


def ratio(busy: float, window: float) -> float | None:
    """Busy time over a window, clamped to 0..1; None for an empty window."""
    return None if window <= 0 else min(1.0, max(0.0, busy / window))
