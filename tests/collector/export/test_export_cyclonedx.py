"""The fleet ML-BOM: schema-valid CycloneDX 1.6, one component per content, hosts as evidence."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.export.cyclonedx import build_fleet_bom
from collector.store import AgentRecord, Store, StoredEvent

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
DIGEST = "3c" * 32
VALIDATOR = JsonStrictValidator(SchemaVersion.V1_6)


def bom(rows: Sequence[Mapping[str, object]], host: str | None = None) -> dict[str, Any]:
    text = build_fleet_bom(rows, now=NOW, tool_version="0.1.0", host_name=host)
    problem = VALIDATOR.validate_str(text)
    assert problem is None, problem
    document: dict[str, Any] = json.loads(text)
    return document


def row(host: str, path: str, **extra: object) -> dict[str, object]:
    return {
        "agent_id": f"agent-{host}",
        "host.name": host,
        "file.path": path,
        "file.size": 8480,
        "file.hash.sha256": DIGEST,
        "ai.model.format": "gguf",
        "ai.model.name": "Tiny Llama",
        "ai.model.architecture": "llama",
        "ai.model.parameters": 1_100_048_384,
        "ai.model.quantization": "Q4_K_M",
        "ai.model.license": "apache-2.0",
        "ai.model.kind": "llm",
        "ai.model.risk": "none",
        "ai.model.origin": "store",
        "removed_at": None,
        **extra,
    }


def props(component: Mapping[str, Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for prop in component.get("properties", []):
        found.setdefault(prop["name"], []).append(prop["value"])
    return found


def test_one_content_on_several_hosts_is_one_component_with_each_place() -> None:
    document = bom([row("b-host", "/m/tiny.gguf"), row("a-host", "/x/copy.gguf")])
    (component,) = document["components"]
    assert component["type"] == "machine-learning-model"
    assert component["bom-ref"] == f"sha256:{DIGEST}"
    assert component["hashes"] == [{"alg": "SHA-256", "content": DIGEST}]
    assert component["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    occurrences = sorted(component["evidence"]["occurrences"], key=lambda o: o["location"])
    assert occurrences == [
        {"location": "/m/tiny.gguf", "additionalContext": "host.name=b-host"},
        {"location": "/x/copy.gguf", "additionalContext": "host.name=a-host"},
    ]
    found = props(component)
    assert found["shadowai:host.name"] == ["a-host", "b-host"]
    assert found["shadowai:host.count"] == ["2"]
    assert found["shadowai:ai.model.quantization"] == ["Q4_K_M"]
    assert found["shadowai:ai.model.risk"] == ["none"]
    assert document["metadata"]["component"] == {
        "bom-ref": "fleet",
        "name": "fleet",
        "type": "platform",
    }
    assert document["dependencies"][0] == {"ref": "fleet", "dependsOn": [f"sha256:{DIGEST}"]}


def test_the_model_card_says_architecture_and_task() -> None:
    (component,) = bom([row("h", "/m.gguf")])["components"]
    assert component["modelCard"] == {
        "modelParameters": {"modelArchitecture": "llama", "task": "text-generation"}
    }


def test_a_host_bom_holds_only_that_hosts_models() -> None:
    other = row("b", "/other.gguf", **{"file.hash.sha256": "ab" * 32})
    document = bom([row("a", "/m.gguf"), other], host="b")
    (component,) = document["components"]
    assert component["bom-ref"] == "sha256:" + "ab" * 32
    assert document["metadata"]["component"]["type"] == "device"
    assert document["metadata"]["component"]["name"] == "b"


def test_removed_files_are_left_out() -> None:
    gone = row("a", "/gone.gguf", removed_at="2026-12-01T00:00:00+00:00")
    assert bom([gone]).get("components", []) == []


def test_the_same_inventory_gives_the_same_document() -> None:
    rows = [row("a", "/1.gguf"), row("b", "/2.gguf", **{"file.hash.sha256": "ab" * 32})]
    assert bom(rows) == bom(list(reversed(rows)))


def test_without_a_hash_copies_on_two_hosts_are_two_components() -> None:
    rows = [row("a", "/m.gguf"), row("b", "/m.gguf")]
    for r in rows:
        del r["file.hash.sha256"]
    refs = [c["bom-ref"] for c in bom(rows)["components"]]
    assert len(refs) == 2 and all(ref.startswith("path:") for ref in refs)


def test_a_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        build_fleet_bom([], now=datetime(2026, 1, 1), tool_version="0.1.0")


def test_the_rows_the_store_lists_make_a_valid_bom(store: Store) -> None:
    at = NOW - timedelta(hours=1)
    for n, host in enumerate(["laptop-1", "laptop-2"], start=1):
        agent_id = f"agent-{n}"
        store.add_agent(AgentRecord(agent_id, bytes([n]) * 32, host, "linux", "ml", "0.1.0", at))
        event = row(host, f"/home/dev/{n}/caf\udce9.gguf")
        event.update({"event.dataset": "shadowai.model_file", "event.action": "discovered"})
        del event["agent_id"], event["removed_at"]
        store.ingest(
            agent_id=agent_id,
            expected_last_seq=0,
            last_seq=1,
            last_digest=b"d1",
            events=[StoredEvent(1, b"d1", b"env", at, event)],
            gaps=[],
            alerts=[],
            now=at,
        )
    (component,) = bom(store.list_models())["components"]
    assert props(component)["shadowai:host.name"] == ["laptop-1", "laptop-2"]
    assert len(component["evidence"]["occurrences"]) == 2


HOSTILE = st.text(st.characters(codec=None, categories=None, exclude_characters=None), max_size=40)
ROWS = st.fixed_dictionaries(
    {"file.path": HOSTILE, "host.name": HOSTILE},
    optional={
        "file.size": st.integers(min_value=0, max_value=2**63),
        "file.hash.sha256": st.sampled_from([DIGEST, "not-a-digest", "", None]),
        "ai.model.fingerprint": HOSTILE,
        "ai.model.name": HOSTILE | st.none(),
        "ai.model.architecture": HOSTILE,
        "ai.model.license": HOSTILE | st.sampled_from(["MIT OR", "Apache-2.0 AND (", "("]),
        "ai.model.kind": HOSTILE | st.sampled_from(["llm", "embedding"]),
        "ai.model.unsafe_reasons": st.lists(HOSTILE, max_size=3),
        "ai.model.unsafe": st.booleans(),
        "removed_at": st.none() | HOSTILE,
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ROWS, max_size=5), st.none() | HOSTILE)
def test_any_rows_give_a_schema_valid_bom(rows: list[dict[str, object]], host: str | None) -> None:
    bom(rows, host=host)
