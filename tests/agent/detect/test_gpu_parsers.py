"""The GPU parsers on recorded outputs of the real interfaces (tests/agent/detect/gpu_recordings,
each saying where its format comes from), and property tests that bad input only raises FormatError.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import plistlib
import struct
from pathlib import Path
from typing import Any

import pynvml  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.detect.gpu import (
    NVML_VALUE_NOT_AVAILABLE,
    DrmClient,
    GpuSample,
    apple_process_times,
    apple_utilization,
    drm_baseline,
    drm_key,
    drm_memory_bytes,
    drm_sample,
    drm_utilization,
    merge_samples,
    nvml_error_name,
    nvml_memory,
    nvml_utilization,
    parse_drm_fdinfo,
    parse_ioreg_accelerators,
    parse_pdh_counter,
    parse_typeperf_csv,
    pdh_samples,
    phys_footprint_from_rusage,
)
from agent.errors import FormatError

RECORDINGS = Path(__file__).parent / "gpu_recordings"
MiB = 1 << 20
FIVE_S = 5_000_000_000


def recording(name: str) -> bytes:
    """The recorded bytes without the leading '#' lines that say where they come from."""
    lines = (RECORDINGS / name).read_bytes().splitlines(keepends=True)
    while lines and lines[0].startswith(b"#"):
        lines.pop(0)
    return b"".join(lines)


def client(name: str) -> DrmClient:
    parsed = parse_drm_fdinfo(recording(name))
    assert parsed is not None
    return parsed


# ---- DRM fdinfo ----


def test_amdgpu_fdinfo_counts_vram_and_gtt_but_not_the_cpu_domain() -> None:
    amd = client("fdinfo_amdgpu_t0.txt")
    assert (amd.driver, amd.pdev, amd.client_id) == ("amdgpu", "0000:03:00.0", 1437)
    assert amd.device == "amdgpu 0000:03:00.0"
    assert amd.engines_ns == {"gfx": 1302489127, "compute": 85123450912, "dma": 23987123}
    assert amd.memory["resident"]["vram"] == 4304 * MiB
    assert amd.memory["memory"]["gtt"] == 18432 * 1024  # the legacy alias, "drm-memory-gtt: \t"
    assert drm_memory_bytes(amd) == 4304 * MiB + 18 * MiB + 8 * 1024  # vram, gtt, doorbell


def test_amdgpu_before_linux_6_11_reports_only_the_legacy_memory_keys() -> None:
    amd = client("fdinfo_amdgpu_linux61.txt")
    assert amd.client_id == 88
    assert drm_memory_bytes(amd) == (6815744 + 2048) * 1024
    assert amd.engines_ns == {"dma": 31877120}


def test_i915_discrete_card_counts_local_and_system_memory() -> None:
    arc = client("fdinfo_i915_dg2.txt")
    assert arc.capacity == {"video": 2}
    assert arc.engines_ns["compute"] == 401223982113
    assert drm_memory_bytes(arc) == 7232 * MiB + 24 * MiB


def test_integrated_gpu_memory_is_its_system_region() -> None:
    assert drm_memory_bytes(client("fdinfo_i915_igpu.txt")) == 6044 * 1024


def test_xe_utilization_comes_from_cycles_over_the_gpu_timestamp_per_engine_group() -> None:
    before, after = client("fdinfo_xe_t0.txt"), client("fdinfo_xe_t5s.txt")
    assert after.total_cycles["ccs"] - before.total_cycles["ccs"] == 96_000_000
    assert drm_memory_bytes(after) == 4196360 * 1024 + 192 * 1024
    # One of the four CCS engines 90% busy: the group of four is 22.5% busy.
    assert drm_utilization(before, after, FIVE_S) == pytest.approx(0.225)


def test_amdgpu_utilization_is_the_busiest_engine_over_wall_time() -> None:
    before, after = client("fdinfo_amdgpu_t0.txt"), client("fdinfo_amdgpu_t5s.txt")
    assert drm_utilization(before, after, FIVE_S) == pytest.approx(0.92)


def test_a_driver_without_usage_stats_gives_no_sample() -> None:
    nvidia = client("fdinfo_nvidia_drm.txt")
    assert nvidia.driver == "nvidia-drm" and not nvidia.has_stats()
    assert drm_sample(7, {drm_key(nvidia, 5): nvidia}, {}, None) is None


def test_a_non_drm_fd_is_not_a_client() -> None:
    eventfd = (
        b"pos:\t0\nflags:\t02004002\nmnt_id:\t15\nino:\t1057\neventfd-count:                0\n"
    )
    assert parse_drm_fdinfo(eventfd) is None


def test_a_first_reading_has_memory_but_no_utilization() -> None:
    amd = client("fdinfo_amdgpu_t0.txt")
    sample = drm_sample(4100, {drm_key(amd, 9): amd}, {}, None)
    assert sample == GpuSample(4100, drm_memory_bytes(amd), None, "amdgpu 0000:03:00.0")


def test_two_fds_of_one_client_count_once() -> None:
    amd = client("fdinfo_amdgpu_t0.txt")
    assert drm_key(amd, 9) == drm_key(amd, 12)
    igpu = client("fdinfo_i915_igpu.txt")
    clients = {drm_key(amd, 9): amd, drm_key(igpu, 14): igpu}
    sample = drm_sample(4100, clients, {}, None)
    assert sample is not None
    assert sample.memory_bytes == 4304 * MiB + 18 * MiB + 8 * 1024 + 6044 * 1024
    assert sample.device == "amdgpu 0000:03:00.0, i915 0000:00:02.0"


def test_a_counter_that_steps_back_counts_from_the_larger_value() -> None:
    before, after = client("fdinfo_amdgpu_t0.txt"), client("fdinfo_amdgpu_t5s.txt")
    assert drm_utilization(after, before, FIVE_S) == 0.0
    kept = drm_baseline(after, before)
    assert kept.engines_ns == after.engines_ns
    assert drm_utilization(kept, after, FIVE_S) == 0.0


def test_utilization_is_unknown_over_an_empty_window() -> None:
    amd = client("fdinfo_amdgpu_t0.txt")
    assert drm_utilization(amd, amd, 0) is None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"drm-engine-capacity-video:\t0", "zero"),
        (b"drm-engine-gfx:\t12 ms", "not a count"),
        (b"drm-total-vram0:\t12 GB", "not a size"),
        (b"drm-client-id:\t" + b"9" * 21, "not a count"),
        (b"drm-engine-:\t1 ns", "names no engine"),
        (b"drm-resident-vram no colon", "not a 'drm-key: value' line"),
        (b"drm-pdev:\t", "names no device"),
    ],
)
def test_broken_drm_lines_are_format_errors_at_their_offset(line: bytes, reason: str) -> None:
    head = b"pos:\t0\ndrm-driver:\tamdgpu\n"
    with pytest.raises(FormatError, match=reason) as caught:
        parse_drm_fdinfo(head + line + b"\n")
    assert caught.value.format == "drm-fdinfo"
    assert caught.value.offset == len(head)


def test_an_oversized_fdinfo_is_refused() -> None:
    with pytest.raises(FormatError, match="longer than any fdinfo"):
        parse_drm_fdinfo(b"drm-driver:\ti915\n" + b"x" * (64 << 10))


_DRM_KEYS = [
    "drm-driver",
    "drm-pdev",
    "drm-client-id",
    "drm-client-name",
    "drm-engine-gfx",
    "drm-engine-capacity-video",
    "drm-cycles-rcs",
    "drm-total-cycles-rcs",
    "drm-total-vram0",
    "drm-resident-system0",
    "drm-memory-gtt",
    "drm-maxfreq-rcs",
    "drm-engine-",
    "pos",
]
_DRM_VALUES = st.one_of(
    st.from_regex(r"[0-9]{1,22}( (ns|KiB|MiB|GiB|B|Hz))?", fullmatch=True),
    st.text(max_size=30),
)


@settings(max_examples=300)
@given(st.binary(max_size=4096))
def test_any_bytes_parse_as_fdinfo_or_raise_format_error(data: bytes) -> None:
    try:
        parsed = parse_drm_fdinfo(data)
    except FormatError:
        return
    if parsed is not None:
        drm_memory_bytes(parsed)


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(_DRM_KEYS), st.sampled_from([":\t", ": ", ":", " "]), _DRM_VALUES
        ),
        max_size=30,
    )
)
def test_drm_like_lines_parse_or_raise_format_error(lines: list[tuple[str, str, str]]) -> None:
    text = "".join(f"{key}{sep}{value}\n" for key, sep, value in lines)
    try:
        parsed = parse_drm_fdinfo(text.encode("utf-8", "surrogatepass"))
    except FormatError:
        return
    if parsed is not None:
        memory = drm_memory_bytes(parsed)
        assert memory is None or memory >= 0
        share = drm_utilization(parsed, parsed, FIVE_S)
        assert share is None or 0.0 <= share <= 1.0


# ---- NVML ----


def nvml_structs(name: str) -> list[dict[str, Any]]:
    """Each recorded device's lists as the ctypes structures of nvml.h that pynvml defines."""
    devices: list[dict[str, Any]] = json.loads((RECORDINGS / name).read_text())["devices"]
    for device in devices:
        for kind in ("compute", "graphics"):
            if isinstance(device[kind], list):
                device[kind] = [pynvml.c_nvmlProcessInfo_t(**p) for p in device[kind]]
        if isinstance(device["utilization"], list):
            device["utilization"] = [
                pynvml.c_nvmlProcessUtilizationSample_t(**s) for s in device["utilization"]
            ]
    return devices


def test_nvml_memory_per_pid_from_recorded_process_structures() -> None:
    gpu0, gpu1 = nvml_structs("nvml_linux_2x4090.json")
    assert nvml_memory(gpu0["compute"] + gpu0["graphics"]) == {
        48213: 11886657536,
        1873: 427819008,
        2154: 139460608,
    }
    assert nvml_memory(gpu1["compute"]) == {48213: 9663676416}


def test_wddm_memory_is_not_available_raw_or_as_pynvml_converts_it() -> None:
    (laptop,) = nvml_structs("nvml_windows_wddm.json")
    raw = laptop["compute"] + laptop["graphics"]
    assert raw[0].usedGpuMemory == NVML_VALUE_NOT_AVAILABLE
    assert nvml_memory(raw) == {9020: None, 1188: None}
    friendly = [pynvml.nvmlStructToFriendlyObject(p) for p in raw]
    for info in friendly:  # what nvmlDeviceGetComputeRunningProcesses_v3 does before returning
        info.usedGpuMemory = None
    assert nvml_memory(friendly) == {9020: None, 1188: None}


def test_nvml_utilization_takes_each_pids_newest_sample_after_the_mark() -> None:
    gpu0 = nvml_structs("nvml_linux_2x4090.json")[0]
    shares, mark = nvml_utilization(gpu0["utilization"], 0)
    assert shares == {48213: 0.87, 2154: 0.02}
    assert mark == 1732268130123456
    later, same = nvml_utilization(gpu0["utilization"], 1732268129951202)
    assert later == {48213: 0.87} and same == mark
    assert nvml_utilization(gpu0["utilization"], mark) == ({}, mark)


def test_nvml_not_available_utilization_is_unknown_not_full() -> None:
    sample = pynvml.c_nvmlProcessUtilizationSample_t(pid=5, timeStamp=10, smUtil=0xFFFFFFFF)
    assert nvml_utilization([sample], 0) == ({5: None}, 10)


def test_nvml_error_names() -> None:
    assert nvml_error_name(pynvml.NVML_ERROR_NO_PERMISSION) == "NVML_ERROR_NO_PERMISSION"
    assert nvml_error_name(pynvml.NVML_ERROR_NOT_SUPPORTED) == "NVML_ERROR_NOT_SUPPORTED"
    assert nvml_error_name(77) == "NVML error 77"


@given(
    st.lists(
        st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1)),
        max_size=20,
    )
)
def test_any_nvml_structures_give_bounded_values(rows: list[tuple[int, int, int]]) -> None:
    infos = [pynvml.c_nvmlProcessInfo_t(pid=p, usedGpuMemory=m) for p, m, _ in rows]
    assert all(m is None or m >= 0 for m in nvml_memory(infos).values())
    samples = [
        pynvml.c_nvmlProcessUtilizationSample_t(pid=p, timeStamp=m, smUtil=u) for p, m, u in rows
    ]
    shares, _ = nvml_utilization(samples, 0)
    assert all(s is None or 0.0 <= s <= 1.0 for s in shares.values())


# ---- Apple: ioreg plists, rusage ----


def test_m3_max_accelerator_and_its_user_clients() -> None:
    (gpu,) = parse_ioreg_accelerators((RECORDINGS / "ioreg_m3max_t0.plist").read_bytes())
    assert (gpu.device, gpu.unified, gpu.utilization) == ("Apple M3 Max", True, 0.71)
    assert (gpu.in_use_memory, gpu.alloc_memory) == (14932488192, 27917287424)
    assert [(c.pid, c.name) for c in gpu.clients][2:] == [
        (1845, "ollama"),
        (1845, "ollama"),
        (2210, "Python"),
        (3307, "Safari Graphics and Media"),
    ]
    times = apple_process_times([gpu])
    assert times[1845].gpu_time_ns == 912345678901 + 1200000
    assert times[1845].clients == {4294985432, 4294985433}
    assert times[412].gpu_time_ns == 39814507416 + 1000000000
    assert times[3307].gpu_time_ns is None


def test_apple_utilization_is_gpu_time_over_wall_time() -> None:
    before = apple_process_times(
        parse_ioreg_accelerators((RECORDINGS / "ioreg_m3max_t0.plist").read_bytes())
    )
    after = apple_process_times(
        parse_ioreg_accelerators((RECORDINGS / "ioreg_m3max_t5s.plist").read_bytes())
    )
    assert apple_utilization(before[1845], after[1845], FIVE_S) == pytest.approx(0.82)
    assert apple_utilization(None, after[1845], FIVE_S) is None
    assert apple_utilization(before[3307], after[3307], FIVE_S) is None
    assert apple_utilization(before[412], after[1845], FIVE_S) is None  # other clients


def test_intel_mac_clients_carry_gpu_time_directly_and_memory_is_not_unified() -> None:
    (gpu,) = parse_ioreg_accelerators((RECORDINGS / "ioreg_intel_iris.plist").read_bytes())
    assert (gpu.device, gpu.unified, gpu.utilization) == ("IntelAccelerator", False, 0.12)
    assert apple_process_times([gpu])[733].gpu_time_ns == 18273645500


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (plistlib.dumps([{"a": 1}], fmt=plistlib.FMT_BINARY), "not an XML property list"),
        (b"<?xml version='1.0'?><plist><array><dict><key>a</key></array></plist>", "unreadable"),
        (plistlib.dumps(["AGXAcceleratorG15X"]), "not a list of registry entries"),
        (b"", "not an XML property list"),
    ],
)
def test_broken_ioreg_output_is_a_format_error(data: bytes, reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        parse_ioreg_accelerators(data)


def test_xml_entities_are_refused_not_expanded() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE plist [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><plist><string>&b;</string></plist>'
    )
    with pytest.raises(FormatError, match="unreadable"):
        parse_ioreg_accelerators(bomb)


_PLIST_LEAVES = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.booleans(),
    st.text(max_size=20),
    st.binary(max_size=10),
    st.sampled_from(["pid 12, ollama", "pid x, y", "pid 99999999999, z", "Metal"]),
)
_PLIST_KEYS = st.sampled_from(
    [
        "PerformanceStatistics",
        "IORegistryEntryChildren",
        "IOUserClientCreator",
        "AppUsage",
        "accumulatedGPUTime",
        "IORegistryEntryID",
        "Device Utilization %",
        "In use system memory",
        "model",
        "IOClass",
    ]
)
_PLIST_TREES = st.recursive(
    _PLIST_LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(_PLIST_KEYS, children, max_size=6)
    ),
    max_leaves=30,
)


@settings(max_examples=300)
@given(_PLIST_TREES)
def test_any_plist_parses_or_raises_format_error(tree: Any) -> None:
    try:
        data = plistlib.dumps(tree, fmt=plistlib.FMT_XML)
    except (OverflowError, TypeError, ValueError):
        return  # not representable in a plist at all
    try:
        accelerators = parse_ioreg_accelerators(data)
    except FormatError:
        return
    for time in apple_process_times(accelerators).values():
        assert time.gpu_time_ns is None or time.gpu_time_ns >= 0


@settings(max_examples=200)
@given(st.binary(max_size=2048).map(lambda b: b"<?xml version='1.0'?><plist>" + b))
def test_any_bytes_after_a_plist_header_raise_only_format_error(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        parse_ioreg_accelerators(data)


def rusage_bytes() -> bytes:
    recorded = json.loads((RECORDINGS / "rusage_v0_ollama.json").read_text())
    values = [value for _, value in recorded["fields"]]
    return bytes.fromhex(recorded["ri_uuid"]) + struct.pack("<10Q", *values)


def test_phys_footprint_from_a_recorded_rusage_info_v0() -> None:
    assert phys_footprint_from_rusage(rusage_bytes()) == 20938940416
    assert phys_footprint_from_rusage(rusage_bytes() + bytes(200)) == 20938940416


def test_a_short_rusage_buffer_is_a_format_error() -> None:
    with pytest.raises(FormatError, match="shorter than rusage_info_v0"):
        phys_footprint_from_rusage(rusage_bytes()[:79])


# ---- Windows PDH ----


def test_typeperf_csv_gives_every_counter_and_its_value() -> None:
    values = parse_typeperf_csv(recording("typeperf_gpu.csv"))
    assert len(values) == 20
    assert values[0] == (
        r"\\DEV-LAPTOP\GPU Process Memory(pid_4312_luid_0x00000000_0x0000F1A2_phys_0)"
        r"\Dedicated Usage",
        5704253440.0,
    )
    assert sum(value is None for _, value in values) == 3


def test_typeperf_output_redirected_as_utf16_reads_the_same() -> None:
    text = recording("typeperf_gpu.csv").decode()
    assert parse_typeperf_csv(text.encode("utf-16")) == parse_typeperf_csv(text.encode())


def test_pdh_samples_sum_memory_and_take_the_busiest_engine() -> None:
    samples, problems = pdh_samples(parse_typeperf_csv(recording("typeperf_gpu.csv")))
    assert problems == []
    assert samples[4312] == GpuSample(
        4312,
        5704253440 + 98304000 + 1048576,
        pytest.approx(0.61228391),  # type: ignore[arg-type]
        "luid 0x00000000_0x0000F1A2 phys 0, luid 0x00000000_0x0000D3E8 phys 0",
    )
    assert samples[1188].memory_bytes == 312475648
    assert samples[1188].utilization == pytest.approx(0.04318842)
    assert 7741 not in samples  # every value blank: it exited between the collections


def test_pdh_values_from_win32pdh_add_up_instances_of_one_engine() -> None:
    recorded = json.loads((RECORDINGS / "pdh_win32pdh_radeon780m.json").read_text())
    samples, _ = pdh_samples(recorded["counters"].items())
    assert samples[6120].memory_bytes == 402653184 + 8153726976
    assert samples[6120].utilization == pytest.approx(0.88)
    assert samples[6120].device == "luid 0x00000000_0x0000C2B1 phys 0"


def test_counters_other_than_the_gpu_ones_are_not_ours() -> None:
    assert parse_pdh_counter(r"\\HOST\Processor(_Total)\% Processor Time") is None
    counter = parse_pdh_counter(
        r"\GPU Engine(pid_88_luid_0x00000000_0x0000C2B1_phys_0_eng_12_engtype_Video Encode)"
        r"\Utilization Percentage"
    )
    assert counter is not None and counter.engine == "eng 12 Video Encode"


@pytest.mark.parametrize(
    "path",
    [
        r"\GPU Engine(pid_1_luid_0x0_0x1_phys_0)\Utilization Percentage",
        r"\GPU Process Memory(pid_x_luid_0x0_0x1_phys_0)\Dedicated Usage",
        r"\GPU Process Memory(pid_1_luid_0x0_0x1_phys_0_eng_0_engtype_3D)\Shared Usage",
        r"\GPU Engine(pid_1_luid_0x0_0x1_phys_0_eng_0_engtype_3D)\Dedicated Usage",
    ],
)
def test_malformed_gpu_counters_are_format_errors_and_listed(path: str) -> None:
    with pytest.raises(FormatError):
        parse_pdh_counter(path)
    samples, problems = pdh_samples([(path, 1.0)])
    assert samples == {} and len(problems) == 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'"11/22/2025 14:03:27.512","1.0"\r\n', "no \\(PDH-CSV 4.0\\) header"),
        (b'"(PDH-CSV 4.0)","\\\\H\\GPU Engine(x)\\Utilization Percentage"\r\n', "no sample row"),
        (b"Error: No valid counters.\r\n", "no \\(PDH-CSV 4.0\\) header"),
    ],
)
def test_broken_typeperf_output_is_a_format_error(data: bytes, reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        parse_typeperf_csv(data)


_INSTANCES = st.one_of(
    st.text(max_size=80),
    st.builds(
        "pid_{}_luid_0x{:X}_0x{:X}_phys_{}{}".format,
        st.integers(-5, 10**12),
        st.integers(0, 2**40),
        st.integers(0, 2**40),
        st.integers(0, 99999),
        st.one_of(st.just(""), st.text(max_size=20).map(lambda t: f"_eng_0_engtype_{t}")),
    ),
)
_PDH_PATHS = st.builds(
    "{}\\{}({})\\{}".format,
    st.sampled_from(["", r"\\HOST", r"\\"]),
    st.sampled_from(["GPU Engine", "GPU Process Memory", "GPU Adapter Memory"]),
    _INSTANCES,
    st.sampled_from(["Utilization Percentage", "Dedicated Usage", "Shared Usage", "Other"]),
)


@settings(max_examples=300)
@given(st.lists(st.tuples(_PDH_PATHS, st.one_of(st.none(), st.floats())), max_size=20))
def test_any_counter_names_parse_or_are_listed_as_problems(
    values: list[tuple[str, float | None]],
) -> None:
    samples, problems = pdh_samples(values)
    assert len(problems) <= len(values)
    for sample in samples.values():
        assert sample.utilization is None or 0.0 <= sample.utilization <= 1.0


@settings(max_examples=300)
@given(st.lists(st.lists(st.text(max_size=40), max_size=6), max_size=6))
def test_any_csv_parses_as_typeperf_or_raises_format_error(rows: list[list[str]]) -> None:
    out = io.StringIO()
    csv.writer(out).writerows([["(PDH-CSV 4.0)", *rows[0]], *rows[1:]] if rows else [])
    try:
        values = parse_typeperf_csv(out.getvalue().encode("utf-8", "surrogatepass"))
    except FormatError:
        return
    assert all(v is None or v >= 0 for _, v in values)


@settings(max_examples=300)
@given(st.binary(max_size=2048))
def test_any_bytes_parse_as_typeperf_or_raise_format_error(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        parse_typeperf_csv(data)


# ---- merging ----


def test_merging_adds_memory_and_keeps_the_busier_share() -> None:
    a = GpuSample(7, 100, 0.2, "NVIDIA GeForce RTX 4090")
    b = GpuSample(7, None, 0.5, "i915 0000:00:02.0")
    assert merge_samples(a, b) == GpuSample(
        7, 100, 0.5, "NVIDIA GeForce RTX 4090, i915 0000:00:02.0"
    )
    assert merge_samples(a, a).device == "NVIDIA GeForce RTX 4090"
    none = GpuSample(7, None, None, None)
    assert merge_samples(none, none) == none
