"""Validate Sigma rule documents with pySigma and compile them into a RuleSet, reporting every
problem with its file:line; `load_rule_dir` is the thin shell that reads a rule directory.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from sigma.exceptions import SigmaCollectionError, SigmaError
from sigma.rule import SigmaRule
from sigma.rule.base import check_alias_expansion
from sigma.rule.detection import EmptySigmaDetections
from sigma.rule.logsource import EmptyLogSource

from collector.errors import RuleError
from collector.governance.evaluate import compile_condition
from collector.governance.model import Matcher, Rule, RuleSet
from collector.governance.pysigma import detection_problems, error_path, metadata_errors
from collector.governance.source import Where, read_documents, yaml_problem

CATEGORIES = ("model_file", "inference_process", "agent_health", "collector")
LEVELS = ("informational", "low", "medium", "high", "critical")
_UNSUPPORTED_DOCUMENTS = {
    "correlation": "correlation rules are not supported",
    "filter": "filter documents are not supported; put exclusions in the rule's condition",
    "action": "collection actions (global, repeat, reset) are not supported",
}


def parse_rules(documents: Iterable[tuple[str, str]]) -> RuleSet:
    """Parse (source label, YAML text) pairs; raise RuleError listing every problem found."""
    problems: list[str] = []
    found: list[tuple[Rule, Where]] = []
    for label, text in documents:
        found.extend(_parse_text(label, text, problems))
    problems.extend(_duplicate_ids(found))
    if not found and not problems:
        problems.append("no rules found: an empty rule set would allow everything (fail closed)")
    if problems:
        raise RuleError(problems)
    return RuleSet(tuple(rule for rule, _ in found))


def load_rule_dir(path: Path) -> RuleSet:
    """Read every *.yml / *.yaml under `path` (except its tests/ folder) and parse them."""
    if not path.is_dir():
        raise RuleError([f"{path}: not a directory of rules"])
    documents: list[tuple[str, str]] = []
    problems: list[str] = []
    for file in _rule_files(path):
        try:
            documents.append((str(file), file.read_bytes().decode("utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{file}:1: cannot read: {exc}")
    try:
        ruleset = parse_rules(documents)
    except RuleError as exc:
        raise RuleError(problems + exc.problems) from None
    if problems:
        raise RuleError(problems)
    return ruleset


def _rule_files(path: Path) -> list[Path]:
    files = [*path.rglob("*.yml"), *path.rglob("*.yaml")]
    tests = path / "tests"
    return sorted(file for file in files if file.is_file() and not file.is_relative_to(tests))


def _parse_text(label: str, text: str, problems: list[str]) -> list[tuple[Rule, Where]]:
    found: list[tuple[Rule, Where]] = []
    try:
        for node, data in read_documents(text):
            where = Where.of(label, node)
            rule = _parse_document(data, where, problems) if data is not None else None
            if rule is not None:
                found.append((rule, where))
    except yaml.YAMLError as exc:
        problems.append(yaml_problem(label, text, exc))
    except RecursionError:
        problems.append(f"{label}:1: yaml: nesting is too deep")
    return found


def _parse_document(data: object, where: Where, problems: list[str]) -> Rule | None:
    if not isinstance(data, dict):
        problems.append(f"{where.label}:{where.line}: a rule document must be a mapping")
        return None
    for key, reason in _UNSUPPORTED_DOCUMENTS.items():
        if key in data:
            problems.append(where.at(key) + reason)
            return None
    before = len(problems)
    problems.extend(_shape_problems(data, where))
    rule = _sigma_rule(data, where, problems)
    if rule is None or not _condition_ok(data):
        return None
    # Compile even after other problems, so that one pass reports them all.
    dataset = _dataset(rule, where, problems)
    matcher = _compile(rule, where, problems)
    if len(problems) > before:
        return None
    return Rule(
        id=str(rule.id),
        title=rule.title,
        level=str(rule.level),
        description=(rule.description or "").strip(),
        tags=tuple(str(tag) for tag in rule.tags),
        dataset=dataset,
        source=f"{where.label}:{where.line}",
        matcher=matcher,
    )


def _shape_problems(data: dict[Any, Any], where: Where) -> list[str]:
    """What we need beyond pySigma's checks: an id to key alerts on, and a level."""
    problems = []
    if not isinstance(data.get("id"), str):
        problems.append(where.at("id") + "required: a UUID, which alerts are keyed on")
    if not isinstance(data.get("level"), str):
        problems.append(where.at("level") + f"required: one of {', '.join(LEVELS)}")
    if not _condition_ok(data):
        problems.append(where.at("detection.condition") + "must be a string or list of strings")
    return problems


def _condition_ok(data: dict[Any, Any]) -> bool:
    """False only for a condition that is there but not text: pySigma would crash on it."""
    detection = data.get("detection")
    if not isinstance(detection, dict) or "condition" not in detection:
        return True
    condition = detection["condition"]
    if isinstance(condition, list):
        return all(isinstance(item, str) for item in condition)
    return isinstance(condition, str)


def _sigma_rule(data: dict[Any, Any], where: Where, problems: list[str]) -> SigmaRule | None:
    # pySigma trips over a non-string id or condition with built-in errors; those are
    # reported by _shape_problems, so keep them away from it.
    safe = dict(data)
    if not isinstance(safe.get("id"), str):
        safe.pop("id", None)
    if not _condition_ok(data):
        safe["detection"] = {**data["detection"], "condition": "them"}  # refused, never parsed
    try:
        check_alias_expansion(safe, SigmaCollectionError)
        metadata = metadata_errors(safe)
        rule = SigmaRule.from_dict(safe, collect_errors=True)
    except SigmaError as exc:
        problems.append(where.at(error_path(exc, [])) + str(exc))
        return None
    except Exception as exc:  # pySigma raises built-in errors on some malformed input
        problems.append(where.at("document") + f"cannot be parsed ({type(exc).__name__}: {exc})")
        return None
    paths = [(error, error_path(error, metadata)) for error in rule.errors]
    problems.extend(where.at(path) + str(error) for error, path in paths if path != "detection")
    in_detection = [error for error, path in paths if path == "detection"]
    if in_detection:
        problems.extend(detection_problems(data.get("detection"), where, in_detection))
        return None
    return None if isinstance(rule.detection, EmptySigmaDetections) else rule


def _compile(rule: SigmaRule, where: Where, problems: list[str]) -> Matcher:
    def report(field: str | None, reason: str) -> None:
        path = "detection" if field is None else where.field_path(field)
        problems.append(where.at(path) + reason)

    matchers: list[Matcher] = []
    for condition in rule.detection.parsed_condition:
        try:
            tree = condition.parse()
        except SigmaError as exc:
            problems.append(where.at("detection.condition") + str(exc))
            continue
        except Exception as exc:  # pyparsing and deep nesting surface as built-in errors
            problems.append(where.at("detection.condition") + f"cannot be parsed ({exc!r})")
            continue
        matchers.append(compile_condition(tree, report))
    # Several conditions are alternatives: the rule fires if any of them holds.
    if len(matchers) == 1:
        return matchers[0]
    alternatives = tuple(matchers)
    return lambda event: any(matcher(event) for matcher in alternatives)


def _dataset(rule: SigmaRule, where: Where, problems: list[str]) -> str | None:
    logsource = rule.logsource
    if isinstance(logsource, EmptyLogSource):  # pySigma refused it and said why
        return None
    if logsource.product != "shadowai":
        problems.append(
            where.at("logsource.product") + f"must be shadowai, not {logsource.product!r}"
        )
    if logsource.service is not None:
        problems.append(where.at("logsource.service") + "shadowai rules take no service")
    if logsource.category is None:
        return None
    if logsource.category not in CATEGORIES:
        problems.append(
            where.at("logsource.category")
            + f"unknown {logsource.category!r}; expected one of {', '.join(CATEGORIES)}"
        )
        return None
    return f"shadowai.{logsource.category}"


def _duplicate_ids(found: list[tuple[Rule, Where]]) -> list[str]:
    first: dict[str, str] = {}
    problems = []
    for rule, where in found:
        if rule.id in first:
            problems.append(
                where.at("id") + f"duplicate rule id {rule.id}, first at {first[rule.id]}"
            )
        else:
            first[rule.id] = where.line_of("id")
    return problems
