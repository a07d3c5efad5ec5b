"""The pass-to-pass diff says exactly what was discovered, changed and removed."""

from __future__ import annotations

import pytest

from agent.inventory import Known, cached_sha256, diff

A = Known((1, 10, 100, 5), {"file.path": "/a", "file.hash.sha256": "aa"})
B = Known((1, 11, 200, 5), {"file.path": "/b", "file.hash.sha256": "bb"})


def test_new_files_are_discovered_and_vanished_ones_removed() -> None:
    assert diff({"/a": A}, {"/b": B}, snapshot=False) == [
        ("discovered", B.fields),
        ("removed", A.fields),
    ]


def test_unchanged_files_are_silent_unless_a_snapshot_is_due() -> None:
    assert diff({"/a": A}, {"/a": A}, snapshot=False) == []
    assert diff({"/a": A}, {"/a": A}, snapshot=True) == [("snapshot", A.fields)]


def test_a_changed_field_is_a_change() -> None:
    edited = Known(A.stat_key, {**A.fields, "file.hash.sha256": "cc"})
    assert diff({"/a": A}, {"/a": edited}, snapshot=False) == [("changed", edited.fields)]


def test_the_hash_is_reused_only_for_the_same_unchanged_file() -> None:
    assert cached_sha256(A, A.stat_key) == "aa"
    assert cached_sha256(A, (1, 10, 100, 6)) is None  # mtime moved
    assert cached_sha256(A, (2, 10, 100, 5)) is None  # another device
    assert cached_sha256(None, A.stat_key) is None


def test_known_round_trips_through_json() -> None:
    assert Known.from_json(A.to_json()) == A


@pytest.mark.parametrize(
    "raw",
    [
        {"stat": [1, 2, 3], "fields": {}},
        {"stat": "x", "fields": {}},
        {"stat": [1, 2, 3, 4], "fields": []},
    ],
)
def test_damaged_state_is_refused(raw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Known.from_json(raw)
