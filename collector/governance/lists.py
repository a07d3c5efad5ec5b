"""Value lists: `lists/NAME.yml` beside the rules, a YAML list of strings, is what the Sigma
placeholder `%NAME%` stands for under the `|expand` modifier.

Entries follow Sigma string rules (`*` and `?` are wildcards, `\\` escapes). An empty list is
valid and matches nothing, so `not approved` holds for everything until someone approves.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping

import yaml
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
    Placeholder,
    SigmaExpansion,
    SigmaRegularExpression,
    SigmaString,
    SigmaType,
    SpecialChars,
)

from collector.governance.source import read_documents, yaml_problem

Lists = Mapping[str, tuple[str, ...]]
Report = Callable[[str | None, str], None]
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
MAX_ENTRIES = 100_000
MAX_EXPANSION = 100_000  # values one placeholder string may become
Part = str | SpecialChars | Placeholder


def parse_list(label: str, text: str, problems: list[str]) -> tuple[str, ...]:
    """The entries of one list file; problems (with file:line) go to `problems`."""
    try:
        documents = [data for _, data in read_documents(text)]
    except yaml.YAMLError as exc:
        problems.append(yaml_problem(label, text, exc))
        return ()
    except RecursionError:
        problems.append(f"{label}:1: yaml: nesting is too deep")
        return ()
    if len(documents) > 1:
        problems.append(f"{label}:1: a value list is one YAML document")
        return ()
    data = documents[0] if documents else None
    if data is None:
        data = []  # a file of comments only: documented, still empty
    if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
        problems.append(f"{label}:1: a value list must be a YAML list of strings")
        return ()
    if len(data) > MAX_ENTRIES:
        problems.append(f"{label}:1: more than {MAX_ENTRIES} entries")
        return ()
    return tuple(data)


def expand_placeholders(node: object, lists: Lists, report: Report) -> None:
    """Replace every `%NAME%` placeholder in a parsed condition tree with its list's values."""
    for leaf in _leaves(node):
        value: SigmaType = leaf.value
        field = leaf.field if isinstance(leaf, ConditionFieldEqualsValueExpression) else None
        if isinstance(value, SigmaExpansion):
            if any(_has_placeholder(item) for item in value.values):
                expanded = [x for item in value.values for x in _expand(item, lists, field, report)]
                leaf.value = SigmaExpansion(expanded)
        elif _has_placeholder(value):
            leaf.value = SigmaExpansion(_expand(value, lists, field, report))


def _leaves(
    node: object,
) -> Iterator[ConditionFieldEqualsValueExpression | ConditionValueExpression]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, (ConditionAND, ConditionOR, ConditionNOT)):
            stack.extend(item.args)
        elif isinstance(item, (ConditionFieldEqualsValueExpression, ConditionValueExpression)):
            yield item


def _has_placeholder(value: SigmaType) -> bool:
    if isinstance(value, SigmaString):
        return value.contains_placeholder()
    if isinstance(value, SigmaRegularExpression) and isinstance(value.regexp, SigmaString):
        return value.regexp.contains_placeholder()
    return False


def _expand(value: SigmaType, lists: Lists, field: str | None, report: Report) -> list[SigmaType]:
    if not isinstance(value, SigmaString):
        report(field, "placeholders (|expand) work on strings only, not regular expressions")
        return []
    missing = [
        part.name for part in value.s if isinstance(part, Placeholder) and part.name not in lists
    ]
    if missing:
        report(field, f"unknown value list %{missing[0]}%: no lists/{missing[0]}.yml")
        return []
    # Our own expansion: pySigma's stops at 200 values, and approval lists grow past that.
    combos: list[list[Part]] = [[]]
    for part in value.s:
        if isinstance(part, Placeholder):
            entries = [list(SigmaString(entry).s) for entry in lists[part.name]]
            combos = [done + entry for done in combos for entry in entries]
        else:
            combos = [[*done, part] for done in combos]
        if len(combos) > MAX_EXPANSION:
            report(field, f"placeholders expand to more than {MAX_EXPANSION} values")
            return []
    return [_string(type(value), parts) for parts in combos]


def _string(kind: type[SigmaString], parts: list[Part]) -> SigmaString:
    """A SigmaString (or cased one) of these parts, adjacent text merged."""
    merged: list[Part] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] = merged[-1] + part
        else:
            merged.append(part)
    result = kind()
    result.s = merged
    return result
