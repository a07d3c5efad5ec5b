"""Rule test cases (rules/tests/*.yml): events with whether a given rule should fire on them.

`run_rule_tests` is pure; `run_rule_test_dir` reads the rule and test directories.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from collector.governance.load import load_rule_dir
from collector.governance.model import Rule, RuleSet
from collector.governance.source import read_documents, yaml_error


@dataclass(frozen=True)
class TestResult:
    """One case's outcome; `problem` says why a case could not run (then passed is False)."""

    __test__ = False  # not a pytest test class, though its name says Test

    file: str
    line: int
    case: str
    rule_id: str
    expected: bool | None
    got: bool | None
    passed: bool
    problem: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: {self.case or '(file)'}"
        if self.problem:
            return f"{where}: {self.problem}"
        verdict = "ok" if self.passed else f"expected match={self.expected}, got {self.got}"
        return f"{where}: {verdict}"


def run_rule_tests(ruleset: RuleSet, documents: Iterable[tuple[str, str]]) -> list[TestResult]:
    """Run every case of every (source label, YAML text) test document against `ruleset`."""
    rules = {rule.id.lower(): rule for rule in ruleset.rules}
    results: list[TestResult] = []
    for label, text in documents:
        try:
            for node, data in read_documents(text):
                if data is not None:
                    line = node.start_mark.line + 1
                    results.extend(_run_document(label, line, _case_lines(node), data, rules))
        except yaml.YAMLError as exc:
            line, reason = yaml_error(text, exc)
            results.append(_broken(label, line, "", "", f"yaml: {reason}"))
        except RecursionError:
            results.append(_broken(label, 1, "", "", "yaml: nesting is too deep"))
    return results


def run_rule_test_dir(rules: Path, tests: Path) -> list[TestResult]:
    """Load the rules under `rules` (RuleError if they are broken) and run tests/*.yml."""
    ruleset = load_rule_dir(rules)
    documents: list[tuple[str, str]] = []
    results: list[TestResult] = []
    for file in sorted([*tests.glob("*.yml"), *tests.glob("*.yaml")]):
        try:
            documents.append((str(file), file.read_bytes().decode("utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            results.append(_broken(str(file), 1, "", "", f"cannot read: {exc}"))
    return results + run_rule_tests(ruleset, documents)


def _broken(file: str, line: int, case: str, rule_id: str, problem: str) -> TestResult:
    return TestResult(file, line, case, rule_id, None, None, passed=False, problem=problem)


def _case_lines(node: yaml.Node) -> list[int]:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == "cases" and isinstance(value, yaml.SequenceNode):
                return [item.start_mark.line + 1 for item in value.value]
    return []


def _run_document(
    label: str, line: int, case_lines: list[int], data: object, rules: Mapping[str, Rule]
) -> list[TestResult]:
    if not isinstance(data, dict):
        return [_broken(label, line, "", "", "a test document must be a mapping")]
    rule_id = data.get("rule")
    cases = data.get("cases")
    if not isinstance(rule_id, str):
        return [_broken(label, line, "", "", "rule: required, the id of the rule under test")]
    if not isinstance(cases, list) or not cases:
        return [_broken(label, line, "", rule_id, "cases: required, a non-empty list")]
    rule = rules.get(rule_id.strip().lower())
    results = []
    for index, case in enumerate(cases):
        case_line = case_lines[index] if index < len(case_lines) else line
        results.append(_run_case(label, case_line, index, case, rule_id, rule))
    return results


def _run_case(
    label: str, line: int, index: int, case: object, rule_id: str, rule: Rule | None
) -> TestResult:
    name = f"case {index + 1}"
    if isinstance(case, dict) and isinstance(case.get("name"), str):
        name = case["name"]
    problem = _case_problem(case)
    if rule is None:
        problem = f"rule: unknown rule id {rule_id!r}"
    if problem or rule is None or not isinstance(case, dict):
        return _broken(label, line, name, rule_id, problem)
    expected = case["match"]
    got = rule.matches(case["event"])
    return TestResult(label, line, name, rule_id, expected, got, passed=got == expected)


def _case_problem(case: object) -> str:
    if not isinstance(case, dict):
        return "a case must be a mapping with name, event and match"
    if not isinstance(case.get("name"), str):
        return "name: required, a string"
    if not isinstance(case.get("match"), bool):
        return "match: required, true or false"
    event = case.get("event")
    if not isinstance(event, dict):
        return "event: required, a mapping of dotted field names to values"
    for field, value in event.items():
        if not isinstance(field, str):
            return f"event: field names must be strings, not {field!r}"
        if not _is_event_value(value):
            return (
                f"event field {field!r}: values must be strings, numbers, booleans or lists "
                "of them (quote dates and times)"
            )
    return ""


def _is_event_value(value: object) -> bool:
    scalar = (str, int, float, bool)
    if isinstance(value, list):
        return all(isinstance(item, scalar) for item in value)
    return value is None or isinstance(value, scalar)
