"""Windows PDH: GPU Process Memory and GPU Engine counter paths, typeperf CSV output, and the
per-pid samples they add up to."""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from agent.detect.gpu.sample import GpuSample
from agent.errors import FormatError

MAX_TYPEPERF_BYTES = 16 << 20
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
