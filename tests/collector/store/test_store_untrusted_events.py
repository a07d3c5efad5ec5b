"""Properties: whatever values an agent's event carries, ingest stores them or skips the
inventory row, and every query answer stays valid JSON. Never another exception."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.store import AgentRecord, NewAlert, Store, StoredEvent
from collector.store.inventory import MODEL_FIELDS, PROCESS_FIELDS, inventory_change, to_json

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
# Every code point, lone surrogates and NUL included.
any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=40)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    any_text,
    st.binary(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
names = st.sampled_from(
    [*MODEL_FIELDS, *PROCESS_FIELDS, "host.name", "host.os.type", "agent.version", "@timestamp"]
)
datasets = st.sampled_from(
    ["shadowai.model_file", "shadowai.inference_process", "shadowai.agent_health", "bogus"]
)
actions = st.sampled_from(["discovered", "changed", "removed", "started", "stopped", "snapshot"])
events = st.builds(
    lambda fields, dataset, action: {
        **fields,
        "event.dataset": dataset,
        "event.action": action,
    },
    st.dictionaries(names | any_text, values, max_size=8),
    datasets | values,
    actions | values,
)
_agents = itertools.count()


@given(event=events)
def test_inventory_change_never_raises_and_json_loads_back(event: dict[str, object]) -> None:
    json.loads(to_json(event))
    change = inventory_change(event)
    if change is not None:
        json.loads(change.fields_json)
        assert change.kind in ("upsert", "end")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(events, min_size=1, max_size=4), summary=any_text)
def test_any_event_values_ingest_and_query_as_json(
    store: Store, batch: list[dict[str, object]], summary: str
) -> None:
    agent_id = f"prop-{next(_agents)}"
    store.add_agent(AgentRecord(agent_id, b"k", "h\x00st", "linux", "g", "1", NOW))
    stored = [StoredEvent(i, b"d", b"e", NOW, e) for i, e in enumerate(batch, start=1)]
    hit = NewAlert("r", "t\x00", "high", agent_id, summary, summary, 1, summary, NOW)
    store.ingest(
        agent_id=agent_id,
        expected_last_seq=0,
        last_seq=len(batch),
        last_digest=b"d",
        events=stored,
        gaps=[],
        alerts=[hit],
        now=NOW,
    )
    answers = [
        store.list_hosts(),
        store.list_models(include_removed=True),
        store.list_processes(include_stopped=True),
        store.list_alerts(),
        store.list_events(limit=10),
    ]
    json.dumps(answers, allow_nan=False)
