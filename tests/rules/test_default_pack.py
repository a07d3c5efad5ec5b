"""The default rule pack loads, is documented, and passes its own cases (one pytest case each)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml

from collector.errors import RuleError
from collector.governance import TestResult, load_rule_dir, run_rule_test_dir

RULES = Path(__file__).resolve().parents[2] / "rules"
TESTS = RULES / "tests"


def pack_results() -> list[TestResult]:
    try:
        return run_rule_test_dir(RULES, TESTS)
    except RuleError as exc:  # one failing case that shows why, instead of a collection error
        return [TestResult(str(RULES), 1, "the pack loads", "", None, None, False, str(exc))]


def pack_documents() -> list[tuple[str, dict[str, object]]]:
    return [
        (path.name, yaml.safe_load(path.read_text(encoding="utf-8")))
        for path in sorted(RULES.glob("*.yml"))
    ]


@pytest.mark.parametrize(
    "result", pack_results(), ids=lambda r: f"{Path(r.file).stem}:{r.line}:{r.case}"
)
def test_rule_case(result: TestResult) -> None:
    assert result.passed, str(result)


def test_the_pack_has_the_gguf_rule_and_others() -> None:
    rules = {rule.title: rule for rule in load_rule_dir(RULES).rules}
    gguf = rules["Local LLM weights (GGUF) on an endpoint"]
    assert (gguf.level, gguf.dataset) == ("medium", "shadowai.model_file")
    assert len(rules) >= 3


def test_every_rule_has_cases_that_fire_and_cases_that_do_not() -> None:
    results = pack_results()
    for rule in load_rule_dir(RULES).rules:
        expectations = {r.expected for r in results if r.rule_id.lower() == rule.id}
        assert expectations == {True, False}, f"{rule.source}: needs firing and quiet cases"


@pytest.mark.parametrize(
    ("name", "document"), [pytest.param(*d, id=d[0]) for d in pack_documents()]
)
def test_every_rule_is_documented(name: str, document: dict[str, object]) -> None:
    uuid.UUID(str(document["id"]))
    assert document["author"] == "shadowai", name
    for key in ("title", "description", "date", "level", "tags", "falsepositives"):
        assert document.get(key), f"{name}: {key} is missing"
