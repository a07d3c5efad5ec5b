"""Flat events and wire events map onto each other without loss."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wire.events import EventFieldError, event_from_flat, flatten_event

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
