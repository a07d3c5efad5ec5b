"""Map protobuf events to the flat dotted field names of DESIGN.md, and back.

Rules, the API and `scan --format json` see events as flat mappings; the wire carries
protobuf. This table is the one place where the two meet.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message

from wire.v1.events_pb2 import AgentHealth, Event, InferenceProcess, ModelFile, Payload

DATASETS: dict[str, str] = {
    "model_file": "shadowai.model_file",
    "inference_process": "shadowai.inference_process",
    "agent_health": "shadowai.agent_health",
}
ACTIONS = frozenset({"discovered", "changed", "removed", "started", "stopped", "snapshot"})

# flat name -> proto field, per body message
BODY_FIELDS: dict[str, dict[str, str]] = {
    "model_file": {
        "file.path": "path",
        "file.size": "size",
        "file.hash.sha256": "sha256",
        "ai.model.format": "format",
        "ai.model.fingerprint": "fingerprint",
        "ai.model.name": "name",
        "ai.model.architecture": "architecture",
        "ai.model.parameters": "parameters",
        "ai.model.quantization": "quantization",
        "ai.model.context_length": "context_length",
        "ai.model.license": "license",
        "ai.model.store": "store",
        "ai.model.source": "source",
        "ai.model.unsafe": "unsafe",
        "ai.model.unsafe_reasons": "unsafe_reasons",
        "ai.model.base_model": "base_model",
        "ai.model.producer": "producer",
        "ai.model.chat_template_sha256": "chat_template_sha256",
        "ai.model.file_count": "file_count",
        "ai.model.risk": "risk",
        "ai.model.origin": "origin",
        "ai.model.kind": "kind",
        "ai.model.package": "package",
        "ai.model.architecture_class": "architecture_class",
        "ai.model.parameters_estimated": "parameters_estimated",
        "ai.model.tensor_count": "tensor_count",
        "user.name": "owner",
    },
    "inference_process": {
        "process.pid": "pid",
        "process.name": "name",
        "process.executable": "executable",
        "process.command_line": "command_line",
        "process.parent.name": "parent_name",
        "user.name": "user_name",
        "ai.runtime.name": "runtime_name",
        "ai.runtime.version": "runtime_version",
        "ai.runtime.libraries": "runtime_libraries",
        "ai.runtime.models": "runtime_models",
        "ai.listen.address": "listen_address",
        "ai.listen.port": "listen_port",
        "ai.listen.exposed": "listen_exposed",
        "ai.gpu.memory_bytes": "gpu_memory_bytes",
        "ai.gpu.utilization": "gpu_utilization",
        "ai.classifier.score": "classifier_score",
        "ai.classifier.top_features": "classifier_top_features",
        "ai.runtime.evidence": "runtime_evidence",
        "ai.listen.exposure_reasons": "listen_exposure_reasons",
    },
    "agent_health": {
        "agent.health.cpu_percent": "cpu_percent",
        "agent.health.rss_bytes": "rss_bytes",
        "agent.health.spool_bytes": "spool_bytes",
        "agent.health.dropped_events": "dropped_events",
        "agent.health.files_scanned": "files_scanned",
        "agent.health.permission_gaps": "permission_gaps",
        "agent.health.permission_gap_paths": "permission_gap_paths",
        "agent.health.processes_scanned": "processes_scanned",
        "agent.health.gpu_available": "gpu_available",
        "agent.health.gpu_permission_gaps": "gpu_permission_gaps",
        "agent.health.refused_envelopes": "refused_envelopes",
        "agent.health.refused_reasons": "refused_reasons",
        "agent.health.spool_level": "spool_level",
        "agent.health.spool_resets": "spool_resets",
        "agent.health.quarantined": "quarantined",
        "agent.health.watchdog_restarts": "watchdog_restarts",
        "agent.health.paused": "paused",
        "agent.health.private_bytes": "private_bytes",
    },
}
COMMON_FIELDS = {
    "event.action": "action",
    "agent.version": "agent_version",
    "host.name": "host_name",
    "host.os.type": "host_os_type",
    "host.group": "host_group",
}
_BODY_BY_DATASET = {dataset: body for body, dataset in DATASETS.items()}


class EventFieldError(ValueError):
    """A flat event that cannot be expressed on the wire; names the field."""


def iso_timestamp(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _order(table: Mapping[str, str], message: type[Message]) -> tuple[tuple[str, str, bool], ...]:
    fields = message.DESCRIPTOR.fields_by_name
    return tuple((name, field, fields[field].is_repeated) for name, field in table.items())


# (flat name, proto field, repeated) in the table's order, per body and for the event.
_BODY_ORDER = {
    body: _order(BODY_FIELDS[body], message)
    for body, message in (
        ("model_file", ModelFile),
        ("inference_process", InferenceProcess),
        ("agent_health", AgentHealth),
    )
}
_COMMON_ORDER = _order(COMMON_FIELDS, Event)


def _present(message: Message) -> dict[str, Any]:
    """The fields a reader would call present: set, non-default or non-empty.

    ListFields() answers exactly that in one call, where asking field by field costs a
    descriptor lookup each: this runs for every event the collector stores.
    """
    return {descriptor.name: value for descriptor, value in message.ListFields()}


def flatten_event(event: Event) -> dict[str, Any]:
    """The flat mapping of one event; absent fields are left out, never None."""
    flat: dict[str, Any] = {"@timestamp": iso_timestamp(event.timestamp_ms)}
    body_name = event.WhichOneof("body")
    if body_name is not None:
        flat["event.dataset"] = DATASETS[body_name]
    present = _present(event)
    for name, field, _ in _COMMON_ORDER:
        if field in present:
            flat[name] = present[field]
    if body_name is None:
        return flat
    present = _present(present[body_name])
    for name, field, repeated in _BODY_ORDER[body_name]:
        if field in present:
            value = present[field]
            flat[name] = list(value) if repeated else value
    if body_name == "model_file" and "ai.model.unsafe_reasons" not in flat:
        flat["ai.model.unsafe_reasons"] = []
    return flat


def flatten_payload(payload: Payload) -> dict[str, Any]:
    flat = flatten_event(payload.event)
    flat["agent.id"] = payload.agent_id
    flat["event.sequence"] = payload.seq
    return flat


def event_from_flat(fields: Mapping[str, Any], *, timestamp_ms: int) -> Event:
    """Build the wire event from flat fields; unknown names are an error, not silently dropped."""
    dataset = fields.get("event.dataset")
    body_name = _BODY_BY_DATASET.get(str(dataset))
    if body_name is None:
        raise EventFieldError(f"event.dataset: unknown dataset {dataset!r}")
    event = Event(timestamp_ms=timestamp_ms)
    body: Message = {
        "model_file": ModelFile,
        "inference_process": InferenceProcess,
        "agent_health": AgentHealth,
    }[body_name]()
    body_fields = BODY_FIELDS[body_name]
    for name, value in fields.items():
        if name in ("event.dataset", "@timestamp", "agent.id", "event.sequence"):
            continue
        if name in COMMON_FIELDS:
            _set(event, COMMON_FIELDS[name], value, name)
        elif name in body_fields:
            _set(body, body_fields[name], value, name)
        else:
            raise EventFieldError(f"{name}: not a field of {dataset}")
    getattr(event, body_name).CopyFrom(body)
    return event


def _set(message: Message, field: str, value: Any, name: str) -> None:
    try:
        if message.DESCRIPTOR.fields_by_name[field].is_repeated:
            getattr(message, field).extend(value)
        else:
            setattr(message, field, value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise EventFieldError(f"{name}: {exc}") from None
