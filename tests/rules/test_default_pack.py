"""The default rule pack loads, is documented, and passes its own cases (one pytest case each)."""

from __future__ import annotations

import re
import uuid
from datetime import date
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


def test_the_pack_has_at_least_twenty_rules_of_every_kind() -> None:
    ruleset = load_rule_dir(RULES)
    rules = {rule.title: rule for rule in ruleset.rules}
    llm = rules["Generative LLM weights on an endpoint"]
    assert (llm.level, llm.dataset) == ("medium", "shadowai.model_file")
    assert len(ruleset.rules) + len(ruleset.correlations) >= 20
    datasets = {rule.dataset for rule in ruleset.rules}
    assert datasets >= {
        f"shadowai.{c}" for c in ("model_file", "inference_process", "agent_health", "collector")
    }
    assert {rule.action for rule in ruleset.rules} == {"alert", "record"}
    assert "value_count" in [c.kind for c in ruleset.correlations]


def test_every_rule_has_cases_that_fire_and_cases_that_do_not() -> None:
    results = pack_results()
    ruleset = load_rule_dir(RULES)
    for rule in (*ruleset.rules, *ruleset.correlations):
        expectations = {r.expected for r in results if r.rule_id.lower() == rule.id}
        assert expectations == {True, False}, f"{rule.source}: needs firing and quiet cases"


def test_the_pack_alerts_on_package_models_only_when_they_are_dangerous() -> None:
    ruleset = load_rule_dir(RULES)
    base = {"event.dataset": "shadowai.model_file", "event.action": "discovered"}
    package = {
        **base,
        "ai.model.origin": "package",
        "ai.model.format": "gguf",
        "ai.model.kind": "llm",
    }
    for risk in ("none", "suspicious"):
        matches = ruleset.evaluate({**package, "ai.model.risk": risk}, today=date(2026, 12, 4))
        assert [m.title for m in matches if m.action == "alert"] == [], risk
    dangerous = ruleset.evaluate({**package, "ai.model.risk": "dangerous"}, today=date(2026, 12, 4))
    assert [m.level for m in dangerous if m.action == "alert"] == ["high"]


@pytest.mark.parametrize("path", sorted((RULES / "lists").glob("*.yml")), ids=lambda p: p.name)
def test_shipped_value_lists_are_empty_and_documented(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert yaml.safe_load(text) == []
    assert sum(line.startswith("#") for line in text.splitlines()) >= 3, "say what goes in it"


def test_every_advisory_cites_its_source_and_names_a_cve() -> None:
    entries = yaml.safe_load((RULES / "advisories" / "runtimes.yml").read_text(encoding="utf-8"))
    runtimes = {entry["runtime"] for entry in entries}
    assert {"ollama", "llama.cpp", "vllm", "pytorch", "keras", "transformers"} <= runtimes
    for entry in entries:
        assert re.fullmatch(r"CVE-\d{4}-\d{4,}", entry["cve"]), entry
        assert entry["reference"].startswith("https://"), entry
        assert entry["fixed"], entry


@pytest.mark.parametrize(
    ("name", "document"), [pytest.param(*d, id=d[0]) for d in pack_documents()]
)
def test_every_rule_is_documented(name: str, document: dict[str, object]) -> None:
    uuid.UUID(str(document["id"]))
    assert document["author"] == "shadowai", name
    for key in ("title", "description", "date", "level", "tags", "falsepositives"):
        assert document.get(key), f"{name}: {key} is missing"
