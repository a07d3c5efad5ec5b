"""Labelled process observations with provenance: the JSON-lines rows of dataset/*.jsonl.

Pure: rows to and from JSON values, and rows to the features both training and the agent use.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agent.detect.features import FeatureVector, features
from agent.detect.processes import GpuUse, ProcessObservation
from agent.detect.runtimes import identify

DATASET_DIR = Path(__file__).parent / "dataset"
LABELS = ("inference", "ordinary")


@dataclass(frozen=True)
class LoadEvidence:
    """Why a busy row counts as under load: the load program ran through the capture and the
    target's total CPU (percent, summed over its processes) rose above its idle baseline."""

    command: str  # the load program, e.g. pgbench
    alive: bool  # still running after the last busy sample
    cpu_idle: float  # the target's idle baseline, measured before the load started
    cpu_busy: float  # the target's total in this row's sample


@dataclass(frozen=True)
class Provenance:
    host: str
    date: str  # ISO 8601, UTC
    how: str  # how the program was started
    derived: bool = False
    source: str = ""  # for derived rows: where the library layout comes from
    sample: int = 0  # the sample's index among those of one capture
    load: LoadEvidence | None = None  # busy rows under an outside load only


@dataclass(frozen=True)
class Row:
    """One labelled observation. `family` is the runtime family for inference rows and the
    kind of program (database, browser, compiler, ...) for ordinary ones."""

    label: str
    program: str
    family: str
    observation: ProcessObservation
    provenance: Provenance
    sizes: Mapping[str, int] | None = None  # None: file sizes were not measured
    gpu_source: bool = False

    @property
    def target(self) -> int:
        return int(self.label == "inference")

    def gpu_use(self) -> GpuUse | None:
        obs = self.observation
        # A capture from a host with a GPU source and no sample for this process: no GPU use.
        return ({obs.pid: obs.gpu} if obs.gpu is not None else {}) if self.gpu_source else None

    def features(self) -> FeatureVector:
        obs = self.observation
        return features(obs, identify(obs), self.gpu_use(), sizes=self.sizes)


_PACKED = ("libraries", "mapped_files", "open_files")


def pack_paths(paths: Iterable[str]) -> dict[str, list[str]]:
    """Paths grouped by folder, {folder with its separator: [names]}: a library list shrinks
    by half or more. Splits at the last / or \\, so Windows paths pack too."""
    grouped: dict[str, list[str]] = {}
    for path in paths:
        cut = max(path.rfind("/"), path.rfind("\\")) + 1
        grouped.setdefault(path[:cut], []).append(path[cut:])
    return grouped


def unpack_paths(grouped: Mapping[str, Iterable[str]]) -> tuple[str, ...]:
    return tuple(sorted(folder + name for folder, names in grouped.items() for name in names))


def observation_to_json(obs: ProcessObservation) -> dict[str, Any]:
    value = asdict(obs)
    value.pop("env")  # redacted settings the features never read
    for name in _PACKED:
        value[name] = pack_paths(getattr(obs, name))
    value["listeners"] = [list(item) for item in obs.listeners]
    value["gpu"] = list(obs.gpu) if obs.gpu is not None else None
    return value


def observation_from_json(value: Mapping[str, Any]) -> ProcessObservation:
    fields = dict(value)
    fields["cmdline"] = tuple(fields.get("cmdline", ()))
    for name in _PACKED:
        fields[name] = unpack_paths(fields.get(name, {}))
    fields["listeners"] = tuple((str(a), int(p)) for a, p in fields.get("listeners", ()))
    gpu = fields.get("gpu")
    fields["gpu"] = (gpu[0], gpu[1]) if gpu is not None else None
    return ProcessObservation(**fields)


def row_to_json(row: Row) -> str:
    value = {
        "label": row.label,
        "program": row.program,
        "family": row.family,
        "provenance": _provenance_json(row.provenance),
        "gpu_source": row.gpu_source,
        "observation": observation_to_json(row.observation),
        "sizes": dict(sorted(row.sizes.items())) if row.sizes is not None else None,
    }
    return json.dumps(value, sort_keys=False, separators=(",", ":"))


def row_from_json(line: str, where: str) -> Row:
    """One row; ValueError naming `where` (file:line) for a row that breaks the schema."""
    try:
        value = json.loads(line)
        if value["label"] not in LABELS:
            raise ValueError(f"label {value['label']!r} is not one of {LABELS}")
        return Row(
            label=value["label"],
            program=value["program"],
            family=value["family"],
            observation=observation_from_json(value["observation"]),
            provenance=_provenance(value["provenance"]),
            sizes=_sizes(value.get("sizes")),
            gpu_source=bool(value.get("gpu_source", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc!r}") from None


def _provenance(value: Mapping[str, Any]) -> Provenance:
    fields = dict(value)
    load = fields.pop("load", None)
    return Provenance(**fields, load=LoadEvidence(**load) if load is not None else None)


def _provenance_json(provenance: Provenance) -> dict[str, Any]:
    """Rows without load evidence keep the shorter form they always had."""
    value = asdict(provenance)
    if value["load"] is None:
        del value["load"]
    return value


def _sizes(value: Any) -> dict[str, int] | None:
    return None if value is None else {str(k): int(v) for k, v in value.items()}


def read_rows(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                yield row_from_json(line, f"{path}:{number}")


def load(folder: Path = DATASET_DIR) -> list[Row]:
    """Every row of every dataset/*.jsonl, files in name order, rows in file order."""
    return [row for path in sorted(folder.glob("*.jsonl")) for row in read_rows(path)]


def write_rows(path: Path, rows: Iterable[Row], *, append: bool = True) -> int:
    count = 0
    with path.open("a" if append else "w", encoding="utf-8") as out:
        for row in rows:
            out.write(row_to_json(row) + "\n")
            count += 1
    return count
