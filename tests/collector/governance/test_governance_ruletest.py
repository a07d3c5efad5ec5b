"""Rule test files: each case runs, and broken files or cases are reported with file and case."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.errors import RuleError
from collector.governance import RuleSet, TestResult, parse_rules, run_rule_test_dir, run_rule_tests

RULE_ID = "16b06d23-c82f-42a1-b761-37aadf88c93c"
RULE = f"""\
title: gguf on an endpoint
id: {RULE_ID}
status: experimental
level: medium
logsource: {{product: shadowai, category: model_file}}
detection:
  sel: {{ai.model.format: gguf}}
  removed: {{event.action: removed}}
  condition: sel and not removed
"""
TESTS = f"""\
rule: {RULE_ID}
cases:
  - name: gguf weights
    event: {{event.dataset: shadowai.model_file, event.action: discovered, ai.model.format: gguf}}
    match: true
  - name: removed weights
    event: {{event.dataset: shadowai.model_file, event.action: removed, ai.model.format: gguf}}
    match: false
  - name: a wrong expectation
    event: {{event.dataset: shadowai.model_file, ai.model.format: onnx}}
    match: true
"""


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    return parse_rules([("rules/gguf.yml", RULE)])


def test_cases_run_and_report_expected_and_got(ruleset: RuleSet) -> None:
    results = run_rule_tests(ruleset, [("tests/gguf.yml", TESTS)])
    assert results == [
        TestResult("tests/gguf.yml", 3, "gguf weights", RULE_ID, True, True, passed=True),
        TestResult("tests/gguf.yml", 6, "removed weights", RULE_ID, False, False, passed=True),
        TestResult("tests/gguf.yml", 9, "a wrong expectation", RULE_ID, True, False, passed=False),
    ]
    assert str(results[2]) == (
        "tests/gguf.yml:9: a wrong expectation: expected match=True, got False"
    )


def test_an_unknown_rule_id_fails_every_case_with_its_name(ruleset: RuleSet) -> None:
    text = TESTS.replace(RULE_ID, "00000000-0000-4000-8000-000000000000")
    results = run_rule_tests(ruleset, [("t.yml", text)])
    assert [(r.case, r.passed, r.problem) for r in results] == [
        (name, False, "rule: unknown rule id '00000000-0000-4000-8000-000000000000'")
        for name in ["gguf weights", "removed weights", "a wrong expectation"]
    ]


def test_rule_ids_match_whatever_their_case(ruleset: RuleSet) -> None:
    results = run_rule_tests(ruleset, [("t.yml", TESTS.replace(RULE_ID, RULE_ID.upper()))])
    assert [r.passed for r in results] == [True, True, False]


@pytest.mark.parametrize(
    ("case", "problem"),
    [
        ("  - just a string\n", "a case must be a mapping with name, event and match"),
        ("  - {event: {a: b}, match: true}\n", "name: required, a string"),
        ("  - {name: n, event: {a: b}}\n", "match: required, true or false"),
        ("  - {name: n, event: {a: b}, match: maybe}\n", "match: required, true or false"),
        ("  - {name: n, event: [a], match: true}\n", "event: required, a mapping"),
        ("  - {name: n, event: {1: b}, match: true}\n", "event: field names must be strings"),
        ("  - {name: n, event: {'@timestamp': 2026-11-22}, match: true}\n", "quote dates"),
        ("  - {name: n, event: {a: {b: c}}, match: true}\n", "event field 'a': values must"),
    ],
)
def test_malformed_cases_are_reported_with_file_line_and_case(
    ruleset: RuleSet, case: str, problem: str
) -> None:
    text = (
        f"rule: {RULE_ID}\ncases:\n  - name: fine\n    event: {{a: b}}\n    match: false\n" + case
    )
    fine, broken = run_rule_tests(ruleset, [("t.yml", text)])
    assert fine.passed
    assert (broken.file, broken.line, broken.passed) == ("t.yml", 6, False)
    assert problem in broken.problem
    assert broken.case in ("n", "case 2")
    assert str(broken) == f"t.yml:6: {broken.case}: {broken.problem}"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("rule: [\n", "yaml: while parsing a flow node"),
        ("- a\n- b\n", "a test document must be a mapping"),
        ("cases: []\n", "rule: required"),
        (f"rule: {RULE_ID}\n", "cases: required, a non-empty list"),
        (f"rule: {RULE_ID}\ncases: []\n", "cases: required, a non-empty list"),
    ],
)
def test_malformed_files_are_reported_once(ruleset: RuleSet, text: str, problem: str) -> None:
    (result,) = run_rule_tests(ruleset, [("t.yml", text)])
    assert result.file == "t.yml" and not result.passed and problem in result.problem


def test_run_rule_test_dir_reads_both_directories(tmp_path: Path) -> None:
    (tmp_path / "rules" / "tests").mkdir(parents=True)
    (tmp_path / "rules" / "gguf.yml").write_text(RULE, encoding="utf-8")
    (tmp_path / "rules" / "tests" / "gguf.yml").write_text(TESTS, encoding="utf-8")
    (tmp_path / "rules" / "tests" / "broken.yaml").write_bytes(b"\xff")
    results = run_rule_test_dir(tmp_path / "rules", tmp_path / "rules" / "tests")
    assert [(Path(r.file).name, r.passed) for r in results] == [
        ("broken.yaml", False),
        ("gguf.yml", True),
        ("gguf.yml", True),
        ("gguf.yml", False),
    ]
    assert results[0].problem.startswith("cannot read: ")


def test_run_rule_test_dir_refuses_broken_rules(tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text(RULE.replace("medium", "loud"), encoding="utf-8")
    with pytest.raises(RuleError, match="level"):
        run_rule_test_dir(tmp_path, tmp_path / "tests")
