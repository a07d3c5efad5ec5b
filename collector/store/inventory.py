"""Pure: turn verified flat events into inventory changes, net them per row for one
batch, and make values JSON-safe.

Events come from agents, so every value is treated as untrusted: text loses NULs and
lone surrogates (PostgreSQL and UTF-8 refuse them), floats lose NaN and infinities
(JSON refuses them), and a row whose key is unusable is skipped, never half-written.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

MODEL_DATASET = "shadowai.model_file"
PROCESS_DATASET = "shadowai.inference_process"

MODEL_FIELDS = (
    "file.path",
    "file.size",
    "file.hash.sha256",
    "ai.model.format",
    "ai.model.fingerprint",
    "ai.model.name",
    "ai.model.architecture",
    "ai.model.parameters",
    "ai.model.quantization",
    "ai.model.context_length",
    "ai.model.license",
    "ai.model.store",
    "ai.model.source",
    "ai.model.unsafe",
    "ai.model.unsafe_reasons",
)
PROCESS_FIELDS = (
    "process.pid",
    "process.name",
    "process.executable",
    "process.command_line",
    "process.parent.name",
    "user.name",
    "ai.runtime.name",
    "ai.runtime.version",
    "ai.runtime.libraries",
    "ai.runtime.models",
    "ai.listen.address",
    "ai.listen.port",
    "ai.listen.exposed",
    "ai.gpu.memory_bytes",
    "ai.gpu.utilization",
    "ai.classifier.score",
    "ai.classifier.top_features",
)
# Fields every event carries; they describe the sender, not the process.
_ENVELOPE_PREFIXES = ("@timestamp", "event.", "agent.", "host.")
_UPSERT_ACTIONS = {
    MODEL_DATASET: frozenset({"discovered", "changed", "snapshot"}),
    PROCESS_DATASET: frozenset({"started", "changed", "snapshot"}),
}
_END_ACTIONS = {MODEL_DATASET: "removed", PROCESS_DATASET: "stopped"}
_MAX_PID = 2**63 - 1
_MAX_DEPTH = 32
_KEPT_TYPES = frozenset({int, bool, type(None)})  # values jsonable returns as they are
# What json.dumps would build for these options on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


@dataclass(frozen=True)
class InventoryChange:
    """Upsert or end one model file or process row, keyed by `key_sha256` within the agent."""

    table: Literal["models", "processes"]
    kind: Literal["upsert", "end"]
    key_sha256: bytes
    path: str  # models only
    pid: int  # processes only
    name: str  # processes only
    fields_json: str
    columns: Mapping[str, object] = field(default_factory=dict)  # model_/process_columns


@dataclass(frozen=True)
class InventoryRow:
    """A batch's net effect on a row it upserts: upsert `latest`, ended at `ended_at` if set."""

    latest: InventoryChange  # the batch's last upsert of this row
    first_seen: datetime
    last_seen: datetime
    ended_at: datetime | None


@dataclass(frozen=True)
class InventoryEnd:
    """A batch that only ends a row: end it at `at` if it exists and is not ended yet."""

    table: Literal["models", "processes"]
    key_sha256: bytes
    at: datetime


@dataclass
class _Net:
    any_change: InventoryChange  # for the table and key
    latest: InventoryChange | None
    first_seen: datetime
    last_seen: datetime
    ended_at: datetime | None


def net_changes(
    changes: Iterable[tuple[InventoryChange, datetime]],
) -> tuple[list[InventoryRow], list[InventoryEnd]]:
    """At most one write per row with the result of applying `changes` one by one, in order.

    One by one, an end applies only to an open row and an upsert reopens it; so the
    first end after the last upsert counts, and without an upsert only the first end.
    """
    rows: dict[tuple[str, bytes], _Net] = {}
    for change, at in changes:
        ident = (change.table, change.key_sha256)
        net = rows.get(ident)
        if net is None:
            net = rows[ident] = _Net(change, None, at, at, None)
        if change.kind == "end":
            if net.ended_at is None:
                net.ended_at = net.last_seen = at
            continue
        if net.latest is None:  # one by one, this upsert inserts the row if it is new
            net.first_seen = at
        net.latest, net.last_seen, net.ended_at = change, at, None
    upserts = [
        InventoryRow(net.latest, net.first_seen, net.last_seen, net.ended_at)
        for net in rows.values()
        if net.latest is not None
    ]
    # A row only ended was last seen when its first end came.
    ends = [
        InventoryEnd(net.any_change.table, net.any_change.key_sha256, net.last_seen)
        for net in rows.values()
        if net.latest is None
    ]
    return upserts, ends


def clean_text(value: object, limit: int | None = None) -> str:
    """Text any database and any JSON encoder accepts."""
    text = value if isinstance(value, str) else str(value)
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    # Only non-ASCII text can hold a lone surrogate; most text skips the round trip.
    if type(text) is not str or not text.isascii():
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text[:limit] if limit is not None else text


def jsonable(value: object, depth: int = 0) -> object:
    """A copy of `value` that json.dumps(allow_nan=False) takes and that loads back equal."""
    if type(value) is str:  # the common case, ahead of the abstract-class checks
        return clean_text(value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if depth >= _MAX_DEPTH:
        return clean_text(value)
    if isinstance(value, Mapping):
        return {clean_text(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, Sequence | set | frozenset) and not isinstance(value, str):
        return [jsonable(item, depth + 1) for item in value]
    return clean_text(value)


def to_json(value: object) -> str:
    return dumps(jsonable(value))


def dumps(clean: object) -> str:
    """JSON text of a value that is already jsonable."""
    return _ENCODER.encode(clean)


def clean_event(event: Mapping[str, object]) -> dict[str, object]:
    """jsonable(event), typed as the mapping it is."""
    if _is_clean(event):
        return {k: v[:] if type(v) is list else v for k, v in event.items()}
    return {clean_text(k): jsonable(v, 1) for k, v in event.items()}


def _is_clean(event: Mapping[str, object]) -> bool:
    """Whether jsonable would keep every key and value as it is, as for most events."""
    texts: list[str] = []
    for key, value in event.items():
        if type(key) is not str:
            return False
        texts.append(key)
        if type(value) is str:
            texts.append(value)
        elif type(value) in _KEPT_TYPES:
            pass
        elif type(value) is float:
            if not math.isfinite(value):
                return False
        elif type(value) is list:
            for item in value:
                if type(item) is str:
                    texts.append(item)
                elif type(item) not in _KEPT_TYPES:
                    return False
        else:
            return False
    text = "".join(texts)  # one scan for all the strings
    return text.isascii() and "\x00" not in text


def label(event: Mapping[str, object], name: str) -> str:
    """A short indexed label such as event.dataset; absent is the empty string."""
    value = event.get(name)
    return "" if value is None else clean_text(value, 200)


def inventory_change(
    event: Mapping[str, object], clean: Mapping[str, object] | None = None
) -> InventoryChange | None:
    """What this event does to the model or process inventory, if anything.

    `clean` is clean_event(event), for a caller that has it already.
    """
    dataset, action = event.get("event.dataset"), event.get("event.action")
    if not isinstance(dataset, str) or not isinstance(action, str):
        return None
    if dataset not in _UPSERT_ACTIONS:
        return None
    if action in _UPSERT_ACTIONS[dataset]:
        kind: Literal["upsert", "end"] = "upsert"
    elif action == _END_ACTIONS[dataset]:
        kind = "end"
    else:
        return None
    if dataset == MODEL_DATASET:
        return _model_change(event, kind, clean)
    return _process_change(event, kind, clean)


# Cleaning keeps ASCII prefixes such as "file." and maps only NULs and surrogates, so
# the fields picked from the cleaned event are the cleaned fields of the raw event.


def _model_change(
    event: Mapping[str, object],
    kind: Literal["upsert", "end"],
    clean: Mapping[str, object] | None,
) -> InventoryChange | None:
    path = event.get("file.path")
    if not isinstance(path, str) or not path:
        return None
    path = clean_text(path)
    clean = clean_event(event) if clean is None else clean
    fields = {k: v for k, v in clean.items() if k.startswith(("file.", "ai.model."))}
    fields["file.path"] = path
    columns = model_columns(fields)
    return InventoryChange("models", kind, _sha256(path), path, 0, "", dumps(fields), columns)


def _process_change(
    event: Mapping[str, object],
    kind: Literal["upsert", "end"],
    clean: Mapping[str, object] | None,
) -> InventoryChange | None:
    pid = event.get("process.pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 <= pid <= _MAX_PID:
        return None
    name = clean_text(event.get("process.name") or "")
    clean = clean_event(event) if clean is None else clean
    fields = {k: v for k, v in clean.items() if not k.startswith(_ENVELOPE_PREFIXES)}
    key = _sha256(f"{pid}\x00{name}")
    columns = process_columns(fields)
    return InventoryChange("processes", kind, key, "", pid, name, dumps(fields), columns)


# Copies of fields into real columns, for listings to filter, group and sort on. Labels are
# '' and numbers -1 when absent or of the wrong type, so a sort key never holds NULL; text is
# clipped so that every btree entry stays far below PostgreSQL's ~2.7 kB limit.
_MODEL_LABELS = {
    "name": ("ai.model.name", 255),
    "format": ("ai.model.format", 64),
    "kind": ("ai.model.kind", 64),
    "risk": ("ai.model.risk", 64),
    "origin": ("ai.model.origin", 64),
    "license": ("ai.model.license", 255),
    "quantization": ("ai.model.quantization", 64),
    "architecture": ("ai.model.architecture", 128),
}
_MODEL_NUMBERS = {"size": "file.size", "parameters": "ai.model.parameters"}
# The models table's copied columns (model_columns' keys), in one order.
MODEL_COPIES = (*_MODEL_LABELS, *_MODEL_NUMBERS, "path_key", "sha256")
PATH_KEY_LENGTH = 512
_MAX_BIGINT = 2**63 - 1
_HEX = frozenset("0123456789abcdef")


def model_columns(fields: Mapping[str, object]) -> dict[str, object]:
    """The models table's column copies of a model file's cleaned fields."""
    columns: dict[str, object] = {
        name: _label(fields.get(key), limit) for name, (key, limit) in _MODEL_LABELS.items()
    }
    columns.update({name: _count(fields.get(key)) for name, key in _MODEL_NUMBERS.items()})
    columns["path_key"] = _label(fields.get("file.path"), PATH_KEY_LENGTH)
    columns["sha256"] = digest_text(fields.get("file.hash.sha256")) or ""
    return columns


def process_columns(fields: Mapping[str, object]) -> dict[str, object]:
    """The processes table's column copies of an inference process's cleaned fields."""
    utilization = fields.get("ai.gpu.utilization")
    if isinstance(utilization, bool) or not isinstance(utilization, int | float):
        utilization = -1.0
    return {
        "runtime": _label(fields.get("ai.runtime.name"), 64),
        "gpu_memory": _count(fields.get("ai.gpu.memory_bytes")),
        "gpu_utilization": float(utilization),
    }


def digest_text(value: object) -> str | None:
    """A SHA-256 as 64 lowercase hex digits, or None if `value` is not one."""
    if not isinstance(value, str) or len(value) != 64:
        return None
    lowered = value.lower()
    return lowered if _HEX.issuperset(lowered) else None


def _label(value: object, limit: int) -> str:
    if type(value) is str:  # fields are cleaned already: only clip
        return value[:limit]
    if value is None or isinstance(value, list | dict):
        return ""
    return clean_text(value, limit)


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_BIGINT:
        return -1
    return value


def host_update(events: Sequence[Mapping[str, object]]) -> dict[str, str]:
    """Host columns from the latest event that carries each of them."""
    columns = {
        "host.name": "host_name",
        "host.os.type": "os_type",
        "agent.version": "agent_version",
    }
    update: dict[str, str] = {}
    for event in reversed(events):
        for name, column in columns.items():
            value = event.get(name)
            if column not in update and isinstance(value, str) and value:
                update[column] = clean_text(value, 255)
        if len(update) == len(columns):
            break
    return update


def dedup_sha256(dedup_key: str) -> bytes:
    return _sha256(dedup_key)


def _sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
