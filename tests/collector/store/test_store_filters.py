"""Filter values and column copies: checked and shaped before any SQL sees them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.paging import BadListing
from collector.store.filters import HostFilter, ModelFilter, check_text
from collector.store.inventory import digest_text, model_columns, process_columns


def test_text_a_database_cannot_compare_is_a_bad_listing() -> None:
    for bad in ["a\x00b", "x" * 513, "\ud800"]:
        with pytest.raises(BadListing):
            check_text("q", bad)
    with pytest.raises(BadListing) as raised:
        HostFilter(group="eng\x00")
    assert raised.value.field == "group"


def test_a_digest_filter_is_64_hex_digits_in_lowercase() -> None:
    assert ModelFilter(sha256="AB" * 32).sha256 == "ab" * 32
    for bad in ["ab", "zz" * 32, "ab" * 33]:
        with pytest.raises(BadListing, match="sha256"):
            ModelFilter(sha256=bad)


@given(st.text(max_size=600))
def test_any_text_is_a_filter_or_a_bad_listing(text: str) -> None:
    try:
        HostFilter(q=text)
    except BadListing as exc:
        assert exc.field == "q"


def test_model_columns_copy_labels_and_counts_with_defaults() -> None:
    columns = model_columns(
        {
            "file.path": "/m/" + "p" * 600,
            "file.size": 123,
            "file.hash.sha256": "AB" * 32,
            "ai.model.name": "n" * 300,
            "ai.model.format": "gguf",
            "ai.model.parameters": True,  # not a count
            "ai.model.kind": ["llm"],  # not a label
        }
    )
    assert columns["sha256"] == "ab" * 32 and columns["format"] == "gguf"
    assert len(str(columns["path_key"])) == 512 and len(str(columns["name"])) == 255
    assert (columns["size"], columns["parameters"], columns["kind"]) == (123, -1, "")
    assert model_columns({})["sha256"] == "" and model_columns({"file.size": 2**63})["size"] == -1


def test_process_columns() -> None:
    columns = process_columns(
        {"ai.runtime.name": "ollama", "ai.gpu.memory_bytes": 5, "ai.gpu.utilization": 12}
    )
    assert columns == {"runtime": "ollama", "gpu_memory": 5, "gpu_utilization": 12.0}
    assert process_columns({"ai.gpu.utilization": "high"})["gpu_utilization"] == -1.0


def test_digest_text() -> None:
    assert digest_text("0" * 64) == "0" * 64
    assert digest_text(None) is None and digest_text("g" * 64) is None and digest_text(7) is None
