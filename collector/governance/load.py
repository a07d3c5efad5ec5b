"""Validate Sigma rule, exception and correlation documents with pySigma and compile them into
a RuleSet, reporting every problem with its file:line; `load_rule_dir` is the thin shell that
reads a rule directory and its value lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from sigma.exceptions import SigmaCollectionError, SigmaError
from sigma.rule import SigmaRule
from sigma.rule.base import check_alias_expansion
from sigma.rule.detection import EmptySigmaDetections, SigmaDetections
from sigma.rule.logsource import EmptyLogSource

from collector.errors import RuleError
from collector.governance.advisories import Advisory, parse_advisories
from collector.governance.correlations import parse_correlation
from collector.governance.evaluate import compile_condition
from collector.governance.index import Keys, condition_keys
from collector.governance.lists import Lists, expand_placeholders, parse_list
from collector.governance.model import ACTIONS, Correlation, Matcher, Rule, RuleSet, Waiver
from collector.governance.pysigma import detection_problems, error_path, metadata_errors
from collector.governance.source import Where, read_documents, yaml_problem
from collector.governance.waivers import References, check_references, parse_waiver

CATEGORIES = ("model_file", "inference_process", "agent_health", "collector")
LEVELS = ("informational", "low", "medium", "high", "critical")
# Folders of a rules path that hold no rules: rule tests, value lists, advisory data.
NOT_RULES = ("tests", "lists", "advisories")
_COLLECTION_ACTIONS = ("global", "repeat", "reset")
Found = tuple[Rule | Waiver | Correlation, Where]


def parse_rules(
    documents: Iterable[tuple[str, str]],
    lists: Mapping[str, tuple[str, ...]] | None = None,
    advisories: Iterable[Advisory] = (),
) -> RuleSet:
    """Parse (source label, YAML text) pairs; raise RuleError listing every problem found."""
    problems: list[str] = []
    found: list[Found] = []
    references: References = []
    for label, text in documents:
        found.extend(_parse_text(label, text, problems, lists or {}, references))
    rules = [(item, where) for item, where in found if isinstance(item, Rule)]
    waivers = [(item, where) for item, where in found if isinstance(item, Waiver)]
    correlations = [(item, where) for item, where in found if isinstance(item, Correlation)]
    problems.extend(_duplicate_ids(found))
    known = {rule.id for rule, _ in rules}
    check_references(references, known, problems)
    for correlation, where in correlations:
        for rule_id in correlation.rule_ids:
            if rule_id not in known:
                problems.append(where.at("correlation.rules") + f"unknown rule {rule_id}")
    if not rules and not problems:
        problems.append("no rules found: an empty rule set would allow everything (fail closed)")
    if problems:
        raise RuleError(problems)
    return RuleSet(
        tuple(rule for rule, _ in rules),
        tuple(waiver for waiver, _ in waivers),
        tuple(correlation for correlation, _ in correlations),
        tuple(advisories),
    )


def load_rule_dir(path: Path) -> RuleSet:
    """Read every *.yml / *.yaml under `path` (but tests/, lists/, advisories/), the value
    lists in lists/, and parse them."""
    if not path.is_dir():
        raise RuleError([f"{path}: not a directory of rules"])
    problems: list[str] = []
    lists = _read_lists(path, problems)
    advisories: list[Advisory] = []
    for file in _yaml_files(path / "advisories"):
        text = _read(file, problems)
        if text is not None:
            advisories.extend(parse_advisories(str(file), text, problems))
    documents = []
    for file in _rule_files(path):
        text = _read(file, problems)
        if text is not None:
            documents.append((str(file), text))
    try:
        ruleset = parse_rules(documents, lists, advisories)
    except RuleError as exc:
        raise RuleError(problems + exc.problems) from None
    if problems:
        raise RuleError(problems)
    return ruleset


def load_value_lists(path: Path) -> dict[str, tuple[str, ...]]:
    """The value lists of a rules path (lists/NAME.yml), for tools such as the SIEM pipeline."""
    problems: list[str] = []
    lists = _read_lists(path, problems)
    if problems:
        raise RuleError(problems)
    return lists


def _read_lists(path: Path, problems: list[str]) -> dict[str, tuple[str, ...]]:
    lists: dict[str, tuple[str, ...]] = {}
    for file in _yaml_files(path / "lists"):
        text = _read(file, problems)
        if text is not None:
            lists[file.stem] = parse_list(str(file), text, problems)
    return lists


def rule_files_signature(path: Path) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime_ns, size) of everything `load_rule_dir` reads: a change means reload."""
    found = []
    data = [*_yaml_files(path / "lists"), *_yaml_files(path / "advisories")]
    for file in [*_rule_files(path), *data]:
        try:
            stat = file.stat()
        except OSError:
            continue
        found.append((str(file), stat.st_mtime_ns, stat.st_size))
    return tuple(found)


def _read(file: Path, problems: list[str]) -> str | None:
    try:
        return file.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{file}:1: cannot read: {exc}")
        return None


def _yaml_files(path: Path) -> list[Path]:
    if not path.is_dir():
        return []
    return sorted(f for f in [*path.glob("*.yml"), *path.glob("*.yaml")] if f.is_file())


def _rule_files(path: Path) -> list[Path]:
    files = [*path.rglob("*.yml"), *path.rglob("*.yaml")]
    skipped = [path / name for name in NOT_RULES]
    return sorted(
        file
        for file in files
        if file.is_file() and not any(file.is_relative_to(s) for s in skipped)
    )


def _parse_text(
    label: str, text: str, problems: list[str], lists: Lists, references: References
) -> list[Found]:
    found: list[Found] = []
    try:
        for node, data in read_documents(text):
            where = Where.of(label, node)
            item = (
                _parse_document(data, where, problems, lists, references)
                if data is not None
                else None
            )
            if item is not None:
                found.append((item, where))
    except yaml.YAMLError as exc:
        problems.append(yaml_problem(label, text, exc))
    except RecursionError:
        problems.append(f"{label}:1: yaml: nesting is too deep")
    return found


def _parse_document(
    data: object, where: Where, problems: list[str], lists: Lists, references: References
) -> Rule | Waiver | Correlation | None:
    if not isinstance(data, dict):
        problems.append(f"{where.label}:{where.line}: a rule document must be a mapping")
        return None
    if data.get("action") in _COLLECTION_ACTIONS:
        problems.append(
            where.at("action") + "collection actions (global, repeat, reset) are not supported"
        )
        return None
    if "filter" in data:
        compile_filter = lambda d, w, p: _compile(d, w, p, lists)[0]  # noqa: E731
        return parse_waiver(data, where, problems, compile_filter, references)
    if "correlation" in data:
        return parse_correlation(data, where, problems)
    return _parse_rule(data, where, problems, lists)


def _parse_rule(
    data: dict[Any, Any], where: Where, problems: list[str], lists: Lists
) -> Rule | None:
    before = len(problems)
    problems.extend(_shape_problems(data, where))
    rule = _sigma_rule(data, where, problems)
    if rule is None or not _condition_ok(data):
        problems.extend(_raw_logsource_problems(data, where))
        return None
    # Compile even after other problems, so that one pass reports them all.
    dataset = _dataset(rule, where, problems)
    matcher, keys = _compile(rule.detection, where, problems, lists)
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
        action=str(data.get("action", "alert")),
        status=str(rule.status or ""),
        keys=keys,
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
    if data.get("action", "alert") not in ACTIONS:
        problems.append(where.at("action") + f"must be one of {', '.join(ACTIONS)}")
    return problems


def _raw_logsource_problems(data: dict[Any, Any], where: Where) -> list[str]:
    """The logsource checks, on the raw document, for a rule pySigma already refused: so a
    broken detection does not hide a wrong category."""
    logsource = data.get("logsource")
    if not isinstance(logsource, dict):
        return []
    category = logsource.get("category")
    if category is not None and category not in CATEGORIES:
        return [
            where.at("logsource.category")
            + f"unknown {category!r}; expected one of {', '.join(CATEGORIES)}"
        ]
    return []


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


def _compile(
    detection: SigmaDetections, where: Where, problems: list[str], lists: Lists
) -> tuple[Matcher, Keys]:
    def report(field: str | None, reason: str) -> None:
        path = "detection" if field is None else where.field_path(field)
        problems.append(where.at(path) + reason)

    matchers: list[Matcher] = []
    trees: list[object] = []
    before = len(problems)
    for condition in detection.parsed_condition:
        try:
            tree = condition.parse()
        except SigmaError as exc:
            problems.append(where.at("detection.condition") + str(exc))
            continue
        except Exception as exc:  # pyparsing and deep nesting surface as built-in errors
            problems.append(where.at("detection.condition") + f"cannot be parsed ({exc!r})")
            continue
        expand_placeholders(tree, lists, report)
        trees.append(tree)
        matchers.append(compile_condition(tree, report))
    # Only for a rule that compiled: a refused one may nest deeper than the walk should go.
    keys = condition_keys(trees) if len(problems) == before else None
    # Several conditions are alternatives: the rule fires if any of them holds.
    if len(matchers) == 1:
        return matchers[0], keys
    alternatives = tuple(matchers)
    return (lambda event: any(matcher(event) for matcher in alternatives)), keys


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


def _duplicate_ids(found: list[Found]) -> list[str]:
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
