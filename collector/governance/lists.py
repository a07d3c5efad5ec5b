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
)

from collector.governance.source import read_documents, yaml_problem

Lists = Mapping[str, tuple[str, ...]]
Report = Callable[[str | None, str], None]
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
MAX_ENTRIES = 100_000


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

    def values(placeholder: Placeholder) -> Iterator[SigmaString]:
        yield from (SigmaString(entry) for entry in lists[placeholder.name])

    return list(value.replace_placeholders(values))
