"""Flat events and wire events map onto each other without loss."""

from __future__ import annotations

import contextlib

import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import given
from hypothesis import strategies as st

from wire.events import (
    BODY_FIELDS,
    COMMON_FIELDS,
    DATASETS,
    EventFieldError,
    event_from_flat,
    flatten_event,
    iso_timestamp,
)
from wire.v1.events_pb2 import AgentHealth, Event, InferenceProcess, ModelFile

BODY_CLASSES: dict[str, type[Message]] = {
    "model_file": ModelFile,
    "inference_process": InferenceProcess,
    "agent_health": AgentHealth,
}

MODEL = {
    "event.dataset": "shadowai.model_file",
    "event.action": "discovered",
    "host.name": "lap",
    "host.os.type": "linux",
    "file.path": "/m/a.gguf",
    "file.size": 0,
    "ai.model.format": "gguf",
    "ai.model.parameters": 7_000_000_000,
    "ai.model.unsafe": False,
    "ai.model.unsafe_reasons": ["os.system"],
}


def test_a_model_file_event_round_trips_with_zero_and_false_kept() -> None:
    flat = flatten_event(event_from_flat(MODEL, timestamp_ms=0))
    assert {k: flat[k] for k in MODEL} == MODEL
    assert flat["@timestamp"] == "1970-01-01T00:00:00.000Z"


def test_absent_fields_are_left_out_not_none() -> None:
    flat = flatten_event(event_from_flat({"event.dataset": "shadowai.model_file"}, timestamp_ms=0))
    assert "ai.model.parameters" not in flat
    assert "file.size" not in flat


def test_a_field_of_another_dataset_is_an_error_naming_it() -> None:
    with pytest.raises(EventFieldError, match=r"process\.pid"):
        event_from_flat({"event.dataset": "shadowai.model_file", "process.pid": 1}, timestamp_ms=0)


def test_an_unknown_dataset_is_an_error() -> None:
    with pytest.raises(EventFieldError, match=r"event\.dataset"):
        event_from_flat({"event.dataset": "other"}, timestamp_ms=0)


@given(
    st.dictionaries(
        st.sampled_from(sorted(MODEL)),
        st.one_of(st.text(max_size=5), st.integers(), st.booleans(), st.lists(st.text(max_size=3))),
    )
)
def test_arbitrary_values_build_an_event_or_raise_our_error(values: dict[str, object]) -> None:
    fields = {**values, "event.dataset": "shadowai.model_file"}
    with contextlib.suppress(EventFieldError):
        event_from_flat(fields, timestamp_ms=0)


def _flatten_field_by_field(event: Event) -> dict[str, object]:
    """The reference: ask every field of the tables in turn whether it is present."""

    def present(message: Message, field: str) -> bool:
        descriptor = message.DESCRIPTOR.fields_by_name[field]
        if descriptor.is_repeated:
            return len(getattr(message, field)) > 0
        if descriptor.has_presence:
            return message.HasField(field)
        return bool(getattr(message, field))

    flat: dict[str, object] = {"@timestamp": iso_timestamp(event.timestamp_ms)}
    body_name = event.WhichOneof("body")
    if body_name is not None:
        flat["event.dataset"] = DATASETS[body_name]
    flat.update({n: getattr(event, f) for n, f in COMMON_FIELDS.items() if present(event, f)})
    if body_name is None:
        return flat
    body = getattr(event, body_name)
    for name, field in BODY_FIELDS[body_name].items():
        if present(body, field):
            value = getattr(body, field)
            repeated = body.DESCRIPTOR.fields_by_name[field].is_repeated
            flat[name] = list(value) if repeated else value
    if body_name == "model_file" and "ai.model.unsafe_reasons" not in flat:
        flat["ai.model.unsafe_reasons"] = []
    return flat


def _field_values(message: type[Message], table: dict[str, str]) -> st.SearchStrategy[Message]:
    """Messages with any subset of the table's (scalar) fields set, zeros and defaults included."""
    by_type = {
        FieldDescriptor.TYPE_STRING: st.text(max_size=4),
        FieldDescriptor.TYPE_BOOL: st.booleans(),
        FieldDescriptor.TYPE_DOUBLE: st.sampled_from([0.0, 0.5, -1.0]),
        FieldDescriptor.TYPE_FLOAT: st.sampled_from([0.0, 0.5, -1.0]),
    }
    fields = message.DESCRIPTOR.fields_by_name

    def values(field: str) -> st.SearchStrategy[object]:
        descriptor = fields[field]
        one = by_type.get(descriptor.type, st.integers(0, 2**31 - 1))
        return st.lists(one, max_size=2) if descriptor.is_repeated else one

    def build(chosen: dict[str, object]) -> Message:
        built = message()
        for field, value in chosen.items():
            if fields[field].is_repeated:
                getattr(built, field).extend(value)
            else:
                setattr(built, field, value)
        return built

    return st.fixed_dictionaries({}, optional={f: values(f) for f in table.values()}).map(build)


@given(
    st.sampled_from(["model_file", "inference_process", "agent_health", None]).flatmap(
        lambda body: st.tuples(
            st.just(body),
            _field_values(Event, {"t": "timestamp_ms", **COMMON_FIELDS}),
            _field_values(BODY_CLASSES[body], BODY_FIELDS[body]) if body else st.none(),
        )
    )
)
def test_flattening_keeps_exactly_the_fields_a_reader_calls_present(
    drawn: tuple[str | None, Message, Message | None],
) -> None:
    body_name, event, body = drawn
    assert isinstance(event, Event)
    if body_name is not None and body is not None:
        getattr(event, body_name).CopyFrom(body)
    flat = flatten_event(event)
    expected = _flatten_field_by_field(event)
    assert flat == expected
    assert list(flat) == list(expected), "the table's order, so stored bodies keep theirs"
