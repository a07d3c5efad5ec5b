"""Index rules by what an event must carry for them to fire, so an event only meets the rules
that can match it: 200 rules on model names cost a dictionary lookup, not 200 matchers.

A rule's keys are a disjunction: the rule can fire only if the event satisfies at least one
("eq", field, folded value) or ("has", field). None means the rule must always be tried. The
keys are derived from pySigma's condition tree and only ever over-approximate: a candidate
still runs its full matcher, so the index can skip work but never change a verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionOR,
)
from sigma.types import SigmaBool, SigmaExists, SigmaExpansion, SigmaNull, SigmaString, SigmaType

Key = tuple[str, ...]  # ("eq", field, folded text) or ("has", field)
Keys = frozenset[Key] | None
# Fields most rules test: keys on them select little, so prefer any other requirement.
_COMMON = frozenset({"event.action", "event.dataset", "host.os.type", "agent.id"})


def fold(found: object) -> str | None:
    """The text an event value is compared as, lower-cased: what equality matching sees."""
    if isinstance(found, str):
        return found.lower()
    if isinstance(found, bool):
        return "true" if found else "false"
    if isinstance(found, (int, float)):
        try:
            return str(found).lower()
        except ValueError:  # an int too long for Python to print
            return None
    return None


def condition_keys(trees: Sequence[object]) -> Keys:
    """Keys of a rule whose conditions (alternatives) are `trees`."""
    found: set[Key] = set()
    for tree in trees:
        keys = _keys(tree)
        if keys is None:
            return None
        found |= keys
    return frozenset(found)


def _keys(node: object) -> Keys:
    if isinstance(node, ConditionAND):
        options = [keys for keys in (_keys(arg) for arg in node.args) if keys is not None]
        return min(options, key=_cost) if options else None
    if isinstance(node, ConditionOR):
        union: set[Key] = set()
        for arg in node.args:
            keys = _keys(arg)
            if keys is None:
                return None
            union |= keys
        return frozenset(union)
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _value_keys(node.field, node.value)
    return None  # NOT, keywords: nothing an event must carry


def _cost(keys: frozenset[Key]) -> tuple[bool, bool, int]:
    common = any(key[1] in _COMMON for key in keys)
    has = any(key[0] == "has" for key in keys)
    return common, has, len(keys)


def _value_keys(field: str, value: SigmaType) -> Keys:
    if isinstance(value, SigmaNull):
        return None  # null matches a missing field
    if isinstance(value, SigmaExists):
        return frozenset({("has", field)}) if value.exists else None
    values = value.values if isinstance(value, SigmaExpansion) else [value]
    texts = [_plain(item) for item in values]
    if values and all(text is not None for text in texts):
        return frozenset(("eq", field, str(text)) for text in texts)
    return frozenset({("has", field)})  # any other check fails on a missing field


def _plain(value: SigmaType) -> str | None:
    if isinstance(value, SigmaBool):
        return "true" if value.boolean else "false"
    if isinstance(value, SigmaString) and all(isinstance(part, str) for part in value.s):
        # Part by part, as the matcher folds them (lower() of a whole string can differ).
        return "".join(str(part).lower() for part in value.s)
    return None


class _Bucket:
    """The rules one dataset can meet, by key."""

    def __init__(self) -> None:
        self.always: list[int] = []
        self.equal: dict[str, dict[str, list[int]]] = {}
        self.present: dict[str, list[int]] = {}

    def add(self, position: int, keys: Keys) -> None:
        if keys is None:
            self.always.append(position)
            return
        for key in keys:
            if key[0] == "eq":
                self.equal.setdefault(key[1], {}).setdefault(key[2], []).append(position)
            else:
                self.present.setdefault(key[1], []).append(position)

    def candidates(self, event: Mapping[str, object]) -> Iterable[int]:
        if not self.equal and not self.present:
            return self.always
        found = set(self.always)
        for field, table in self.equal.items():
            value = event.get(field)
            if value is None:
                continue
            for item in value if isinstance(value, (list, tuple)) else (value,):
                hits = table.get(fold(item) or "\0")
                if hits:
                    found.update(hits)
        for field, positions in self.present.items():
            if event.get(field) is not None:
                found.update(positions)
        return sorted(found)  # load order, as the rules were written


class RuleIndex:
    """Positions of the rules to try for an event: dataset first, then required keys."""

    def __init__(self, entries: Sequence[tuple[str | None, Keys]]) -> None:
        datasets = {dataset for dataset, _ in entries if dataset is not None}
        self._by_dataset = {dataset: _Bucket() for dataset in datasets}
        self._generic = _Bucket()  # events of a dataset no rule names
        for position, (dataset, keys) in enumerate(entries):
            if dataset is None:
                self._generic.add(position, keys)
            for name, bucket in self._by_dataset.items():
                if dataset in (None, name):
                    bucket.add(position, keys)

    def candidates(self, event: Mapping[str, object]) -> Iterable[int]:
        dataset = event.get("event.dataset")
        bucket = self._by_dataset.get(dataset) if isinstance(dataset, str) else None
        return (bucket or self._generic).candidates(event)
