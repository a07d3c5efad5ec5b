"""Rule test cases (rules/tests/*.yml): events with whether a given rule should fire on them.

A case runs through the whole rule set (index and exceptions included) as the collector
would; a correlation's case gives `events`, in order. A rule without cases fails unless its
status is experimental. `run_rule_tests` is pure; `run_rule_test_dir` reads the directories.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import yaml

from collector.governance.correlations import fires, in_memory_tallies, window_entry
from collector.governance.load import load_rule_dir
from collector.governance.model import Correlation, Event, Rule, RuleSet
from collector.governance.source import read_documents, yaml_error

Tested = Rule | Correlation


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


def run_rule_tests(
    ruleset: RuleSet, documents: Iterable[tuple[str, str]], *, today: date | None = None
) -> list[TestResult]:
    """Run every case of every (source label, YAML text) test document against `ruleset`,
    with exceptions applying as on `today` (or a case's own `today`); then fail each rule
    that no case tested, unless it is experimental."""
    results: list[TestResult] = []
    run = _Runner(ruleset, today)
    for label, text in documents:
        try:
            for node, data in read_documents(text):
                if data is not None:
                    line = node.start_mark.line + 1
                    results.extend(_run_document(label, line, _case_lines(node), data, run))
        except yaml.YAMLError as exc:
            line, reason = yaml_error(text, exc)
            results.append(_broken(label, line, "", "", f"yaml: {reason}"))
        except RecursionError:
            results.append(_broken(label, 1, "", "", "yaml: nesting is too deep"))
    return results + _untested(ruleset, {r.rule_id.strip().lower() for r in results})


def _untested(ruleset: RuleSet, tested: set[str]) -> list[TestResult]:
    missing = []
    every: list[Tested] = [*ruleset.rules, *ruleset.correlations]
    for rule in every:
        if rule.id.lower() in tested or rule.status == "experimental":
            continue
        file, _, line = rule.source.rpartition(":")
        problem = "no test cases: add firing and quiet cases, or mark it status: experimental"
        missing.append(_broken(file, int(line), "(no test cases)", rule.id, problem))
    return missing


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
    return results + run_rule_tests(ruleset, documents, today=datetime.now(UTC).date())


def _broken(file: str, line: int, case: str, rule_id: str, problem: str) -> TestResult:
    return TestResult(file, line, case, rule_id, None, None, passed=False, problem=problem)


def _case_lines(node: yaml.Node) -> list[int]:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == "cases" and isinstance(value, yaml.SequenceNode):
                return [item.start_mark.line + 1 for item in value.value]
    return []


class _Runner:
    """Runs one case's event (or a correlation's events) through the rule set."""

    def __init__(self, ruleset: RuleSet, today: date | None) -> None:
        self.ruleset = ruleset
        self.today = today
        self.tested: dict[str, Tested] = {r.id.lower(): r for r in ruleset.rules}
        self.tested.update({c.id.lower(): c for c in ruleset.correlations})

    def fired(self, tested: Tested, case: dict[str, object]) -> bool:
        today = _day(case.get("today")) or self.today
        if isinstance(tested, Rule):
            event = case["event"]
            assert isinstance(event, dict)
            event = {**event, **self.ruleset.enrich(event)}
            matches = self.ruleset.evaluate(event, today=today)
            return any(m.rule_id == tested.id for m in matches)
        events = case["events"]
        assert isinstance(events, list)
        return self._correlates(tested, events, today)

    def _correlates(
        self, correlation: Correlation, events: list[Event], today: date | None
    ) -> bool:
        start = datetime(2026, 1, 1, tzinfo=UTC)
        window = []
        for index, event in enumerate(events):
            at = _time(event.get("@timestamp")) or start + timedelta(seconds=index)
            event = {**event, **self.ruleset.enrich(event)}
            for match in self.ruleset.evaluate(event, today=today):
                if match.rule_id in correlation.rule_ids:
                    agent = str(event.get("agent.id", ""))
                    entry = window_entry(correlation, match.rule_id, event, agent, at)
                    window.extend([entry] if entry is not None else [])
            tallies = in_memory_tallies(correlation, window, at)
            if any(fires(correlation, tally) for tally in tallies.values()):
                return True
        return False


def _day(value: object) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _time(value: object) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return parsed if parsed is None or parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _run_document(
    label: str, line: int, case_lines: list[int], data: object, run: _Runner
) -> list[TestResult]:
    if not isinstance(data, dict):
        return [_broken(label, line, "", "", "a test document must be a mapping")]
    rule_id = data.get("rule")
    cases = data.get("cases")
    if not isinstance(rule_id, str):
        return [_broken(label, line, "", "", "rule: required, the id of the rule under test")]
    if not isinstance(cases, list) or not cases:
        return [_broken(label, line, "", rule_id, "cases: required, a non-empty list")]
    tested = run.tested.get(rule_id.strip().lower())
    results = []
    for index, case in enumerate(cases):
        case_line = case_lines[index] if index < len(case_lines) else line
        results.append(_run_case(label, case_line, index, case, rule_id, tested, run))
    return results


def _run_case(
    label: str,
    line: int,
    index: int,
    case: object,
    rule_id: str,
    tested: Tested | None,
    run: _Runner,
) -> TestResult:
    name = f"case {index + 1}"
    if isinstance(case, dict) and isinstance(case.get("name"), str):
        name = case["name"]
    problem = _case_problem(case, isinstance(tested, Correlation))
    if tested is None:
        problem = f"rule: unknown rule id {rule_id!r}"
    if problem or tested is None or not isinstance(case, dict):
        return _broken(label, line, name, rule_id, problem)
    expected = case["match"]
    got = run.fired(tested, case)
    return TestResult(label, line, name, rule_id, expected, got, passed=got == expected)


def _case_problem(case: object, correlation: bool) -> str:
    if not isinstance(case, dict):
        return "a case must be a mapping with name, event and match"
    if not isinstance(case.get("name"), str):
        return "name: required, a string"
    if not isinstance(case.get("match"), bool):
        return "match: required, true or false"
    if correlation:
        events = case.get("events")
        if not isinstance(events, list) or not events:
            return "events: required for a correlation, a list of events in arrival order"
        problems = [_event_problem(event) for event in events]
        return next((p for p in problems if p), "")
    return _event_problem(case.get("event"))


def _event_problem(event: object) -> str:
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
