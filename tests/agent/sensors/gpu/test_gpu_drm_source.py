"""The DRM fdinfo source over a /proc tree of real files and symlinks holding recorded fdinfo text,
over this machine's real /proc, and over a small fake for what root cannot be refused."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.detect.gpu import GpuSample
from agent.sensors.gpu.drm import DrmSource, LinuxProcFs, open_default, render_nodes

RECORDINGS = Path(__file__).parents[2] / "detect" / "gpu_recordings"
MiB = 1 << 20
AMD_MEMORY = 4304 * MiB + 18 * MiB + 8 * 1024


def recording(name: str) -> bytes:
    lines = (RECORDINGS / name).read_bytes().splitlines(keepends=True)
    while lines and lines[0].startswith(b"#"):
        lines.pop(0)
    return b"".join(lines)


def open_fd(proc: Path, pid: int, fd: int, target: str, fdinfo: bytes) -> None:
    """What /proc/<pid>/fd/<fd> and /proc/<pid>/fdinfo/<fd> show for one open file."""
    (proc / str(pid) / "fd").mkdir(parents=True, exist_ok=True)
    (proc / str(pid) / "fdinfo").mkdir(parents=True, exist_ok=True)
    (proc / str(pid) / "fd" / str(fd)).unlink(missing_ok=True)
    (proc / str(pid) / "fd" / str(fd)).symlink_to(target)
    (proc / str(pid) / "fdinfo" / str(fd)).write_bytes(fdinfo)


def ticking(step: int) -> Iterator[int]:
    return itertools.count(1_000_000_000, step)


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    open_fd(root, 4100, 0, "/dev/pts/3", b"pos:\t0\nflags:\t02\nmnt_id:\t25\nino:\t6\n")
    open_fd(root, 4100, 9, "/dev/dri/renderD128", recording("fdinfo_amdgpu_t0.txt"))
    open_fd(root, 4100, 12, "/dev/dri/renderD128", recording("fdinfo_amdgpu_t0.txt"))  # a dup
    open_fd(root, 4100, 14, "/home/dev/models/qwen2.5-7b-q4_k_m.gguf", b"pos:\t0\n")
    open_fd(root, 5200, 7, "/dev/dri/card1", recording("fdinfo_nvidia_drm.txt"))
    return root


def test_memory_on_the_first_reading_utilization_from_the_second(proc: Path) -> None:
    clock = ticking(5_000_000_000)
    source = DrmSource(procfs=LinuxProcFs(proc), clock=lambda: next(clock))
    first = source.read({4100, 5200})
    assert first.available and first.permission_gaps == ()
    assert first.samples == {4100: GpuSample(4100, AMD_MEMORY, None, "amdgpu 0000:03:00.0")}
    for fd in (9, 12):
        open_fd(proc, 4100, fd, "/dev/dri/renderD128", recording("fdinfo_amdgpu_t5s.txt"))
    second = source.read({4100, 5200})
    assert second.samples[4100].utilization == pytest.approx(0.92)
    assert second.samples[4100].memory_bytes == AMD_MEMORY  # the duplicated fd counts once


def test_xe_cycles_give_utilization_between_readings(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    open_fd(proc, 6000, 5, "/dev/dri/renderD129", recording("fdinfo_xe_t0.txt"))
    clock = ticking(5_000_000_000)
    source = DrmSource(procfs=LinuxProcFs(proc), clock=lambda: next(clock))
    source.read({6000})
    open_fd(proc, 6000, 5, "/dev/dri/renderD129", recording("fdinfo_xe_t5s.txt"))
    sample = source.read({6000}).samples[6000]
    assert sample.utilization == pytest.approx(0.225)
    assert sample.device == "xe 0000:03:00.0"


def test_a_pid_that_left_and_came_back_starts_without_utilization(proc: Path) -> None:
    clock = ticking(5_000_000_000)
    source = DrmSource(procfs=LinuxProcFs(proc), clock=lambda: next(clock))
    source.read({4100})
    source.read({5200})
    assert source.read({4100}).samples[4100].utilization is None


def test_exited_processes_and_closed_fds_are_skipped_quietly(proc: Path) -> None:
    (proc / "4100" / "fdinfo" / "12").unlink()  # closed between the listing and the read
    source = DrmSource(procfs=LinuxProcFs(proc))
    reading = source.read({4100, 31337})
    assert set(reading.samples) == {4100} and reading.permission_gaps == ()


def test_a_broken_fdinfo_is_skipped_and_the_rest_is_read(proc: Path) -> None:
    open_fd(proc, 4100, 12, "/dev/dri/renderD128", b"drm-driver:\tamdgpu\ndrm-engine-gfx:\tlots\n")
    reading = DrmSource(procfs=LinuxProcFs(proc)).read({4100})
    assert reading.samples[4100].memory_bytes == AMD_MEMORY


class RefusingProcFs:
    """Another user's process as a non-root agent sees it: /proc/<pid>/fd is not readable."""

    def dri_fds(self, pid: int) -> list[int]:
        if pid == 1:
            raise PermissionError(13, "Permission denied")
        return [3]

    def fdinfo(self, pid: int, fd: int) -> bytes:
        raise PermissionError(13, "Permission denied")


def test_refused_reads_are_permission_gaps() -> None:
    reading = DrmSource(procfs=RefusingProcFs()).read([1, 2])
    assert reading.samples == {}
    assert reading.permission_gaps == (
        "/proc/1/fd: permission denied",
        "/proc/2/fdinfo/3: permission denied",
    )


def test_this_machines_real_proc_has_no_drm_clients() -> None:
    reading = DrmSource(procfs=LinuxProcFs()).read({os.getpid(), os.getppid()})
    assert reading.samples == {} and reading.permission_gaps == ()


def test_render_nodes_decide_whether_there_is_a_drm_source(tmp_path: Path) -> None:
    dri = tmp_path / "dri"
    assert render_nodes(dri) == [] and open_default(dri) is None
    dri.mkdir()
    (dri / "card0").touch()
    assert open_default(dri) is None
    (dri / "renderD128").touch()
    assert render_nodes(dri) == ["renderD128"]
    assert isinstance(open_default(dri, tmp_path / "proc"), DrmSource)
