"""What changed since the last pass: known model files in, lifecycle events out (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

StatKey = tuple[int, int, int, int]  # device, inode, size, mtime_ns


@dataclass(frozen=True)
class Known:
    """One model file as last reported: its stat identity and the fields we sent."""

    stat_key: StatKey
    fields: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"stat": list(self.stat_key), "fields": dict(self.fields)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Known:
        stat = raw["stat"]
        if not (
            isinstance(stat, list) and len(stat) == 4 and all(isinstance(x, int) for x in stat)
        ):
            raise ValueError("stat: expected four integers")
        fields = raw["fields"]
        if not isinstance(fields, dict):
            raise ValueError("fields: expected an object")
        return cls((stat[0], stat[1], stat[2], stat[3]), fields)


def cached_sha256(previous: Known | None, stat_key: StatKey) -> str | None:
    """The digest we already computed, if the file is provably the same one unchanged."""
    if previous is None or previous.stat_key != stat_key:
        return None
    value = previous.fields.get("file.hash.sha256")
    return value if isinstance(value, str) else None


def diff(
    previous: Mapping[str, Known], current: Mapping[str, Known], *, snapshot: bool
) -> list[tuple[str, Mapping[str, Any]]]:
    """(event.action, fields) for every file discovered, changed or removed since `previous`.

    With `snapshot`, unchanged files are reported too, so the collector can rebuild its
    inventory from one pass.
    """
    events: list[tuple[str, Mapping[str, Any]]] = []
    for path, known in current.items():
        before = previous.get(path)
        if before is None:
            events.append(("discovered", known.fields))
        elif dict(before.fields) != dict(known.fields):
            events.append(("changed", known.fields))
        elif snapshot:
            events.append(("snapshot", known.fields))
    for path, known in previous.items():
        if path not in current:
            events.append(("removed", known.fields))
    return events
