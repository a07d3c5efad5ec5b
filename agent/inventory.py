"""What changed since the last report: known model files in, lifecycle events out (pure)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from agent.detect.formats import ModelInfo
from agent.detect.groups import ModelGroup, apply_folder_metadata, merge_infos
from agent.detect.model import FileObservation

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


def change(
    before: Known | None, after: Known | None, *, snapshot: bool = False
) -> tuple[str, Mapping[str, Any]] | None:
    """The event one path deserves, from what was last reported and what is there now."""
    if after is None:
        return None if before is None else ("removed", before.fields)
    if before is None:
        return ("discovered", after.fields)
    if dict(before.fields) != dict(after.fields):
        return ("changed", after.fields)
    return ("snapshot", after.fields) if snapshot else None


def diff(
    previous: Mapping[str, Known], current: Mapping[str, Known], *, snapshot: bool
) -> list[tuple[str, Mapping[str, Any]]]:
    """(event.action, fields) for every file discovered, changed or removed since `previous`.

    With `snapshot`, unchanged files are reported too, so the collector can rebuild its
    inventory from one pass.
    """
    events = [
        change(previous.get(path), known, snapshot=snapshot) for path, known in current.items()
    ]
    events += [change(known, None) for path, known in previous.items() if path not in current]
    return [event for event in events if event is not None]


Identity = tuple[int, int]  # device, inode
FOLDER_FORMATS = frozenset({"tf_savedmodel", "coreml"})  # a folder that is one model


class Ledger:
    """The last reported state of every model file, updated one path at a time.

    Full passes, watcher batches and the background hasher all record here, so each update
    carries a generation: a pass removes only the paths that nobody touched since it began.
    Not thread-safe; the daemon holds a lock around it.
    """

    def __init__(self, known: Mapping[str, Known] | None = None) -> None:
        self._known: dict[str, Known] = dict(known or {})
        self._touched: dict[str, int] = dict.fromkeys(self._known, 0)
        self._holders: dict[Identity, str] = {k.stat_key[:2]: p for p, k in self._known.items()}
        self.generation = 0

    def __len__(self) -> int:
        return len(self._known)

    def begin(self) -> int:
        """A new generation, for a pass or batch about to start."""
        self.generation += 1
        return self.generation

    def get(self, path: str) -> Known | None:
        return self._known.get(path)

    def holder(self, identity: Identity) -> str | None:
        """The path under which this inode was reported, so a second link is not reported."""
        return self._holders.get(identity)

    def keep(self, path: str) -> None:
        """Seen again, unchanged, under another name (a hardlink or symlink of it)."""
        if path in self._known:
            self._touched[path] = self.generation

    def record(
        self, path: str, known: Known | None, *, snapshot: bool = False
    ) -> tuple[str, Mapping[str, Any]] | None:
        """Store what is at `path` now (None: nothing) and return the event it deserves."""
        before = self._known.get(path)
        if before is not None and self._holders.get(before.stat_key[:2]) == path:
            del self._holders[before.stat_key[:2]]
        if known is None:
            self._known.pop(path, None)
            self._touched.pop(path, None)
        else:
            self._known[path] = known
            self._touched[path] = self.generation
            self._holders[known.stat_key[:2]] = path
        return change(before, known, snapshot=snapshot)

    def unseen(self, scope: Sequence[str] | None, since: int) -> list[str]:
        """Known paths under `scope` (None: everywhere) not touched since generation `since`."""
        return [
            path
            for path, generation in self._touched.items()
            if generation < since and (scope is None or _within(path, scope))
        ]

    def state(self) -> dict[str, Known]:
        return dict(self._known)


def _within(path: str, scope: Sequence[str]) -> bool:
    for top in scope:
        top = top.rstrip("/\\") or top
        if path == top or path.startswith((top + "/", top + "\\")):
            return True
    return False


@dataclass(frozen=True)
class Reported:
    """One model to report: a single file, or a set of files or a folder under one path."""

    path: str
    primary: FileObservation  # the member whose stat stands for the model
    info: ModelInfo
    members: tuple[str, ...] = ()  # every file of a set or folder; () for a single file


def reported_models(
    observations: Sequence[FileObservation], groups: Sequence[ModelGroup]
) -> list[Reported]:
    """What to report for a pass's model files once grouped: a set or folder once under its
    group's path, nothing for a partial download or an incomplete set, a lone file as itself.

    Groups that none of the observations belong to (names that only look like weights) are
    ignored: a model is only what its content says is one.
    """
    by_path = {os.path.normpath(o.path): o for o in observations}
    grouped: set[str] = set()
    found: list[Reported] = []
    for group in groups:
        seen = [by_path[m] for m in group.members if m in by_path]
        grouped.update(group.members)
        if group.partial or not seen:
            continue
        info = merge_infos([o.info for o in seen]) if len(seen) > 1 else seen[0].info
        if group.format in FOLDER_FORMATS:
            info = replace(info, format=group.format)
        info = apply_folder_metadata(info, group.config, group.card)
        primary = by_path.get(group.path, seen[0])
        many = len(group.members) > 1 or group.format in FOLDER_FORMATS
        found.append(Reported(group.path, primary, info, group.members if many else ()))
    found += [Reported(p, o, o.info) for p, o in by_path.items() if p not in grouped]
    return found
