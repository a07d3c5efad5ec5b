"""The CycloneDX ML-BOM builder: schema-valid 1.6 documents from flat model_file events."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.bom import build_bom

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
DIGEST = "3c" * 32
VALIDATOR = JsonStrictValidator(SchemaVersion.V1_6)


def bom(events: Sequence[Mapping[str, object]], host: str = "laptop-7") -> dict[str, Any]:
    text = build_bom(events, tool_version="0.1.0", now=NOW, host_name=host)
    problem = VALIDATOR.validate_str(text)
    assert problem is None, problem
    document: dict[str, Any] = json.loads(text)
    return document


def gguf_event(path: str = "/models/tiny.gguf", /, **extra: object) -> dict[str, object]:
    return {
        "event.dataset": "shadowai.model_file",
        "event.action": "snapshot",
        "file.path": path,
        "file.size": 8480,
        "file.hash.sha256": DIGEST,
        "ai.model.format": "gguf",
        "ai.model.fingerprint": "f0" * 32,
        "ai.model.name": "Tiny Llama",
        "ai.model.architecture": "llama",
        "ai.model.parameters": 1_100_048_384,
        "ai.model.quantization": "Q4_K_M",
        "ai.model.license": "apache-2.0",
        **extra,
    }


def properties(component: Mapping[str, Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for prop in component.get("properties", []):
        found.setdefault(prop["name"], []).append(prop["value"])
    return found


def test_a_bom_of_no_models_is_valid_and_describes_the_host() -> None:
    document = bom([])
    assert document["specVersion"] == "1.6"
    assert document.get("components", []) == []
    assert document["metadata"]["component"] == {
        "bom-ref": "host:laptop-7",
        "name": "laptop-7",
        "type": "device",
    }
    tool = document["metadata"]["tools"]["components"][0]
    assert (tool["name"], tool["version"]) == ("shadowai-agent", "0.1.0")
    assert document["metadata"]["timestamp"].startswith("2026-11-02T09:30:00")


def test_a_model_becomes_a_machine_learning_model_component_with_its_hash() -> None:
    (component,) = bom([gguf_event()])["components"]
    assert component["type"] == "machine-learning-model"
    assert component["name"] == "Tiny Llama"
    assert component["bom-ref"] == f"sha256:{DIGEST}"
    assert component["hashes"] == [{"alg": "SHA-256", "content": DIGEST}]
    assert component["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    assert component["evidence"]["occurrences"] == [{"location": "/models/tiny.gguf"}]
    props = properties(component)
    assert props["shadowai:ai.model.parameters"] == ["1100048384"]
    assert props["shadowai:ai.model.quantization"] == ["Q4_K_M"]
    assert props["shadowai:file.size"] == ["8480"]


def test_every_unsafe_reason_is_a_property_of_its_own() -> None:
    event = gguf_event(**{"ai.model.unsafe": True, "ai.model.unsafe_reasons": ["a", "b"]})
    props = properties(bom([event])["components"][0])
    assert props["shadowai:ai.model.unsafe"] == ["true"]
    assert props["shadowai:ai.model.unsafe_reasons"] == ["a", "b"]


def test_copies_of_one_content_are_one_component_found_in_several_places() -> None:
    document = bom([gguf_event("/a/tiny.gguf"), gguf_event("/b/copy.gguf")])
    (component,) = document["components"]
    locations = {o["location"] for o in component["evidence"]["occurrences"]}
    assert locations == {"/a/tiny.gguf", "/b/copy.gguf"}


def test_the_component_reference_is_stable_across_scans_and_hosts() -> None:
    first = bom([gguf_event("/a/tiny.gguf")], host="one")["components"][0]["bom-ref"]
    second = bom([gguf_event("/elsewhere/x.gguf")], host="two")["components"][0]["bom-ref"]
    assert first == second == f"sha256:{DIGEST}"


def test_the_same_input_gives_the_same_document() -> None:
    events = [gguf_event(), gguf_event("/b.gguf", **{"file.hash.sha256": "ab" * 32})]
    assert bom(events) == bom(list(reversed(events)))


def test_without_a_hash_the_fingerprint_identifies_the_model() -> None:
    event = gguf_event()
    del event["file.hash.sha256"]
    (component,) = bom([event])["components"]
    assert component["bom-ref"] == "fingerprint:" + "f0" * 32
    assert "hashes" not in component


def test_a_known_architecture_gets_a_model_card() -> None:
    card = bom([gguf_event()])["components"][0]["modelCard"]
    assert card == {
        "modelParameters": {
            "modelArchitecture": "llama",
            "architectureFamily": "transformer",
            "task": "text-generation",
        }
    }


def test_a_hugging_face_class_name_gives_the_task_of_its_head() -> None:
    event = gguf_event(**{"ai.model.architecture": "BertForSequenceClassification"})
    params = bom([event])["components"][0]["modelCard"]["modelParameters"]
    assert params["task"] == "text-classification"
    assert params["architectureFamily"] == "transformer"


def test_an_unknown_architecture_is_named_without_guessing_family_or_task() -> None:
    event = gguf_event(**{"ai.model.architecture": "Sequential"})
    params = bom([event])["components"][0]["modelCard"]["modelParameters"]
    assert params == {"modelArchitecture": "Sequential"}


def test_no_architecture_means_no_model_card() -> None:
    event = gguf_event()
    del event["ai.model.architecture"]
    assert "modelCard" not in bom([event])["components"][0]


def test_a_hugging_face_source_gives_a_package_url_and_version() -> None:
    revision = "0123456789abcdef0123456789abcdef01234567"
    event = gguf_event(**{"ai.model.source": f"hf:meta-llama/Llama-3.2-1B@{revision}"})
    component = bom([event])["components"][0]
    assert component["purl"] == f"pkg:huggingface/meta-llama/Llama-3.2-1B@{revision}"
    assert component["version"] == revision


def test_an_ollama_source_gives_the_tag_as_version() -> None:
    event = gguf_event(**{"ai.model.source": "ollama:registry.ollama.ai/library/llama3.2:1b"})
    component = bom([event])["components"][0]
    assert component["version"] == "1b"
    assert "purl" not in component


def test_a_license_that_is_no_spdx_id_is_kept_by_name() -> None:
    event = gguf_event(**{"ai.model.license": "Llama 3.2 Community License"})
    licenses = bom([event])["components"][0]["licenses"]
    assert licenses == [{"license": {"name": "Llama 3.2 Community License"}}]


def test_other_datasets_and_removed_files_are_left_out() -> None:
    events = [
        gguf_event("/gone.gguf", **{"event.action": "removed"}),
        {"event.dataset": "shadowai.inference_process", "process.pid": 7},
    ]
    assert bom(events).get("components", []) == []


def test_a_file_name_with_undecodable_bytes_becomes_valid_unicode() -> None:
    event = gguf_event("/models/caf\udce9.gguf")
    (occurrence,) = bom([event])["components"][0]["evidence"]["occurrences"]
    assert occurrence["location"] == "/models/caf\ufffd.gguf"


def test_a_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        build_bom([], tool_version="0.1.0", now=datetime(2026, 1, 1), host_name="h")


# Header-derived values (names, licences, architectures) come from untrusted files.
HOSTILE_TEXT = st.text(
    st.characters(codec=None, categories=None, exclude_characters=None), max_size=40
) | st.sampled_from(["", " ", "(", "MIT OR", "Apache-2.0 AND (", "\x00\x1b[2J", "\ud800"])
MODEL_FIELDS = st.fixed_dictionaries(
    {"file.path": HOSTILE_TEXT},
    optional={
        "file.size": st.integers(min_value=0, max_value=2**63),
        "file.hash.sha256": st.sampled_from([DIGEST, "not-a-digest", ""]),
        "ai.model.format": HOSTILE_TEXT,
        "ai.model.fingerprint": HOSTILE_TEXT,
        "ai.model.name": HOSTILE_TEXT,
        "ai.model.architecture": HOSTILE_TEXT,
        "ai.model.parameters": st.integers(min_value=0, max_value=2**63),
        "ai.model.license": HOSTILE_TEXT,
        "ai.model.source": HOSTILE_TEXT,
        "ai.model.unsafe": st.booleans(),
        "ai.model.unsafe_reasons": st.lists(HOSTILE_TEXT, max_size=3),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(MODEL_FIELDS, max_size=4), HOSTILE_TEXT)
def test_any_field_values_give_a_schema_valid_bom(
    events: list[dict[str, object]], host: str
) -> None:
    bom(events, host=host)
