"""Pure: turn verified flat events into inventory changes and JSON-safe values.

Events come from agents, so every value is treated as untrusted: text loses NULs and
lone surrogates (PostgreSQL and UTF-8 refuse them), floats lose NaN and infinities
(JSON refuses them), and a row whose key is unusable is skipped, never half-written.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


def clean_text(value: object, limit: int | None = None) -> str:
    """Text any database and any JSON encoder accepts."""
    text = value if isinstance(value, str) else str(value)
    text = text.replace("\x00", "\ufffd")
    text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text[:limit] if limit is not None else text


def jsonable(value: object, depth: int = 0) -> object:
    """A copy of `value` that json.dumps(allow_nan=False) takes and that loads back equal."""
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
    return json.dumps(jsonable(value), ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def label(event: Mapping[str, object], name: str) -> str:
    """A short indexed label such as event.dataset; absent is the empty string."""
    value = event.get(name)
    return "" if value is None else clean_text(value, 200)


def inventory_change(event: Mapping[str, object]) -> InventoryChange | None:
    """What this event does to the model or process inventory, if anything."""
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
        return _model_change(event, kind)
    return _process_change(event, kind)


def _model_change(
    event: Mapping[str, object], kind: Literal["upsert", "end"]
) -> InventoryChange | None:
    path = event.get("file.path")
    if not isinstance(path, str) or not path:
        return None
    path = clean_text(path)
    fields = {k: v for k, v in event.items() if k.startswith(("file.", "ai.model."))}
    fields["file.path"] = path
    return InventoryChange("models", kind, _sha256(path), path, 0, "", to_json(fields))


def _process_change(
    event: Mapping[str, object], kind: Literal["upsert", "end"]
) -> InventoryChange | None:
    pid = event.get("process.pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 <= pid <= _MAX_PID:
        return None
    name = clean_text(event.get("process.name") or "")
    fields = {k: v for k, v in event.items() if not k.startswith(_ENVELOPE_PREFIXES)}
    key = _sha256(f"{pid}\x00{name}")
    return InventoryChange("processes", kind, key, "", pid, name, to_json(fields))


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
    return update


def dedup_sha256(dedup_key: str) -> bytes:
    return _sha256(dedup_key)


def _sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
