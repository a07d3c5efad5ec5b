"""Properties: the quick paths for clean text and clean events give what the plain rules give.

Most events are ASCII text and integers, which clean_text and clean_event pass through
without rebuilding; these tests hold those shortcuts to the general definitions.
"""

from __future__ import annotations

import copy

from hypothesis import given
from hypothesis import strategies as st

from collector.store.inventory import (
    MODEL_FIELDS,
    PROCESS_FIELDS,
    clean_event,
    clean_text,
    inventory_change,
    jsonable,
    to_json,
)

ascii_text = st.text(alphabet=st.characters(codec="ascii"), max_size=20)
any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=20)
texts = ascii_text | any_text
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
    st.binary(max_size=4),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.tuples(inner) | st.dictionaries(texts, inner, max_size=3)
    ),
    max_leaves=8,
)
# Events as agents send them: flat, mostly ASCII, the odd NUL, NaN or list.
flat_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    ascii_text,
    st.lists(ascii_text | st.integers() | st.floats(), max_size=3),
)
names = st.sampled_from(
    [*MODEL_FIELDS, *PROCESS_FIELDS, "host.name", "agent.id", "@timestamp", "event.x"]
)
events = st.builds(
    lambda fields, dataset, action: {**fields, "event.dataset": dataset, "event.action": action},
    st.dictionaries(names | texts, values, max_size=8)
    | st.dictionaries(names | ascii_text, flat_values, max_size=8),
    st.sampled_from(["shadowai.model_file", "shadowai.inference_process"]),
    st.sampled_from(["discovered", "snapshot", "removed", "started", "stopped"]),
)


class Tagged(str):
    pass


@given(texts)
def test_clean_text_replaces_nuls_and_lone_surrogates(text: str) -> None:
    expected = text.replace("\x00", "\ufffd").encode("utf-8", "surrogatepass")
    assert clean_text(text) == expected.decode("utf-8", "replace")
    assert type(clean_text(Tagged(text))) is str


@given(events)
def test_clean_event_is_jsonable_of_the_event(event: dict[str, object]) -> None:
    before = copy.deepcopy(event)
    clean = clean_event(event)
    assert clean == jsonable(event)
    assert to_json(event) == to_json(clean)
    for value in clean.values():
        if isinstance(value, list):
            value.append("changed")
    assert event == before  # a copy: the event is left as it was


@given(events)
def test_inventory_fields_are_the_cleaned_fields_of_the_raw_event(
    event: dict[str, object],
) -> None:
    change = inventory_change(event)
    assert inventory_change(event, clean_event(event)) == change
    if change is None:
        return
    if change.table == "models":
        fields = {k: v for k, v in event.items() if k.startswith(("file.", "ai.model."))}
        fields["file.path"] = change.path
    else:
        prefixes = ("@timestamp", "event.", "agent.", "host.")
        fields = {k: v for k, v in event.items() if not k.startswith(prefixes)}
    assert change.fields_json == to_json(fields)
