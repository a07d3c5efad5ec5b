"""Broken rules are refused with every problem and its file:line, never half-loaded."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from collector.errors import RuleError
from collector.governance import load_rule_dir, parse_rules

GOOD = """\
title: good rule
id: {id}
level: medium
logsource:
  product: shadowai
  category: model_file
detection:
  sel:
    ai.model.format: gguf
  condition: sel
"""
ID_A = "00000000-0000-4000-8000-00000000000a"
ID_B = "00000000-0000-4000-8000-00000000000b"


def problems_of(*documents: tuple[str, str]) -> list[str]:
    with pytest.raises(RuleError) as raised:
        parse_rules(documents)
    return raised.value.problems


def only_problem(label: str, text: str) -> str:
    (problem,) = problems_of((label, textwrap.dedent(text)))
    return problem


def test_a_good_rule_loads() -> None:
    assert [rule.id for rule in parse_rules([("a.yml", GOOD.format(id=ID_A))]).rules] == [ID_A]


def test_bad_yaml_names_the_line() -> None:
    problem = only_problem("bad.yml", "title: x\nid: y\n  level: [high\n")
    assert problem.startswith("bad.yml:3: yaml: ")


def test_duplicate_yaml_keys_are_refused_at_the_second_key() -> None:
    text = GOOD.format(id=ID_A).replace("    ai.model.format: gguf\n", "    a: 1\n    a: 2\n")
    assert only_problem("dup.yml", text) == "dup.yml:10: yaml: duplicate key 'a'"


@pytest.mark.parametrize(
    ("value", "reason"),
    [("2026-02-30", "invalid timestamp: day is out of range"), ("9" * 5000, "invalid int: ")],
)
def test_yaml_values_python_cannot_build_are_yaml_errors(value: str, reason: str) -> None:
    text = GOOD.format(id=ID_A).replace("ai.model.format: gguf", f"x: {value}")
    assert only_problem("v.yml", text).startswith(f"v.yml:9: yaml: {reason}")


def test_unknown_modifier_names_the_detection_key_and_line() -> None:
    text = GOOD.format(id=ID_A).replace("ai.model.format: gguf", "file.path|contians: x")
    assert only_problem("mod.yml", text) == (
        "mod.yml:9: detection.sel.file.path|contians: Unknown modifier 'contians'"
    )


def test_every_broken_detection_item_is_reported() -> None:
    text = GOOD.format(id=ID_A).replace(
        "    ai.model.format: gguf\n",
        "    file.size|gt: many\n    ok: fine\n    x|re: '(('\n    y|cidr: 300.0.0.0/8\n",
    )
    problems = problems_of(("items.yml", text))
    assert [problem.split(": ")[0:2] for problem in problems] == [
        ["items.yml:9", "detection.sel.file.size|gt"],
        ["items.yml:11", "detection.sel.x|re"],
        ["items.yml:12", "detection.sel.y|cidr"],
    ]


@pytest.mark.parametrize(
    ("logsource", "expected"),
    [
        ("{product: windows, category: model_file}", "logsource.product: must be shadowai"),
        ("{category: model_file}", "logsource.product: must be shadowai, not None"),
        ("{product: shadowai, category: web}", "logsource.category: unknown 'web'"),
        ("{product: shadowai, service: sshd}", "logsource.service: shadowai rules take no"),
        ("{}", "logsource: Sigma log source can't be empty"),
    ],
)
def test_wrong_logsource_is_refused(logsource: str, expected: str) -> None:
    text = GOOD.format(id=ID_A).replace(
        "logsource:\n  product: shadowai\n  category: model_file\n", f"logsource: {logsource}\n"
    )
    problem = only_problem("ls.yml", text)
    assert problem.startswith(f"ls.yml:4: {expected}"), problem


def test_duplicate_rule_ids_name_both_places() -> None:
    problems = problems_of(
        ("a.yml", GOOD.format(id=ID_A)),
        ("b.yml", GOOD.format(id=ID_B) + "---\n" + GOOD.format(id=ID_A.upper())),
    )
    assert problems == [f"b.yml:13: id: duplicate rule id {ID_A}, first at a.yml:2"]


def test_an_empty_rule_set_is_an_error() -> None:
    assert problems_of() == [
        "no rules found: an empty rule set would allow everything (fail closed)"
    ]
    assert len(problems_of(("empty.yml", "# nothing here\n---\n"))) == 1


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ((f"id: {ID_A}\n", ""), "x.yml:1: id: required: a UUID"),
        ((f"id: {ID_A}\n", "id: 42\n"), "x.yml:2: id: required: a UUID"),
        ((f"id: {ID_A}\n", "id: not-a-uuid\n"), "x.yml:2: id: Sigma rule identifier must be"),
        (("level: medium\n", ""), "x.yml:1: level: required: one of informational"),
        (("level: medium\n", "level: urgent\n"), "x.yml:3: level: 'urgent' is not a valid"),
        (("title: good rule\n", ""), "x.yml:1: title: Sigma rule must have a title"),
        (("condition: sel", "condition: sel and other"), "x.yml:10: detection.condition: "),
        (("condition: sel", "condition: [1, 2]"), "x.yml:10: detection.condition: must be"),
        (("condition: sel", "condition: sel |"), "x.yml:10: detection.condition: "),
        (("condition: sel", "condition: ((sel"), "x.yml:10: detection.condition: "),
        (("  condition: sel\n", ""), "x.yml:7: detection.condition: Sigma rule must contain"),
    ],
)
def test_rule_problems_carry_file_line_and_field(change: tuple[str, str], expected: str) -> None:
    text = GOOD.format(id=ID_A).replace(*change)
    problem = only_problem("x.yml", text)
    assert problem.startswith(expected), problem


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ("x|fieldref: other", "|fieldref is not supported"),
        ("x|expand: '%approved%'", "unknown value list %approved%: no lists/approved.yml"),
        ("'@timestamp|hour': 3", "timestamp part modifiers"),
    ],
)
def test_what_cannot_be_evaluated_is_refused_not_ignored(item: str, reason: str) -> None:
    text = GOOD.format(id=ID_A).replace("ai.model.format: gguf", item)
    problem = only_problem("u.yml", text)
    assert problem.startswith("u.yml:9: detection.sel.") and reason in problem


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("action: global\ntitle: g\n", "c.yml:1: action: collection actions"),
        ("- a list\n", "c.yml:1: a rule document must be a mapping"),
    ],
)
def test_documents_that_are_not_rules_are_refused(document: str, expected: str) -> None:
    assert only_problem("c.yml", document).startswith(expected)


def test_every_problem_in_every_file_is_reported_together() -> None:
    problems = problems_of(
        ("one.yml", GOOD.format(id=ID_A).replace("level: medium", "level: loud")),
        ("two.yml", GOOD.format(id=ID_B).replace("gguf", "gguf\n    x|nope: 1")),
        ("three.yml", "title: [\n"),
    )
    assert [problem.split(":")[0] for problem in problems] == ["one.yml", "two.yml", "three.yml"]


def test_a_rule_with_metadata_and_detection_problems_reports_both() -> None:
    text = GOOD.format(id=ID_A).replace("level: medium", "level: loud")
    text = text.replace("ai.model.format: gguf", "x|fieldref: y")
    problems = problems_of(("both.yml", text))
    assert [problem.split(": ")[1] for problem in problems] == ["level", "detection.sel.x|fieldref"]


def test_deeply_nested_input_is_an_error_not_a_crash() -> None:
    (problem,) = problems_of(("deep.yml", "[" * 100_000 + "]" * 100_000))
    assert problem == "deep.yml:1: yaml: nesting is too deep"
    for condition, expected in [
        ("not " * 5000 + "sel", "cond.yml:10: detection.condition: cannot be parsed"),
        ("(sel and " * 100 + "sel" + ")" * 100, "cond.yml:7: detection: condition nests deeper"),
    ]:
        text = GOOD.format(id=ID_A).replace("condition: sel", f"condition: '{condition}'")
        assert only_problem("cond.yml", text).startswith(expected)


def test_alias_bombs_are_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in "bcdefgh":
        previous = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [" + ", ".join([f"*{previous}"] * 10) + "]\n"
    text = GOOD.format(id=ID_A) + bomb
    assert "too many nodes" in only_problem("bomb.yml", text)


def write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")


def test_load_rule_dir_reads_yml_and_yaml_below_but_not_tests(tmp_path: Path) -> None:
    write(tmp_path / "a.yml", GOOD.format(id=ID_A))
    write(tmp_path / "team" / "b.yaml", GOOD.format(id=ID_B))
    write(tmp_path / "tests" / "a.yml", "rule: whatever\ncases: []\n")
    write(tmp_path / "README.md", "not a rule")
    ruleset = load_rule_dir(tmp_path)
    assert [rule.id for rule in ruleset.rules] == [ID_A, ID_B]
    assert ruleset.rules[1].source == f"{tmp_path / 'team' / 'b.yaml'}:1"


def test_load_rule_dir_reports_unreadable_files_with_the_rest(tmp_path: Path) -> None:
    write(tmp_path / "a.yml", GOOD.format(id=ID_A).replace("level: medium", "level: x"))
    write(tmp_path / "b.yml", b"title: \xff\xfe\n")
    with pytest.raises(RuleError) as raised:
        load_rule_dir(tmp_path)
    first, second = raised.value.problems
    assert first.startswith(f"{tmp_path / 'b.yml'}:1: cannot read: ")
    assert second.startswith(f"{tmp_path / 'a.yml'}:3: level: ")


def test_load_rule_dir_refuses_an_empty_or_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="no rules found"):
        load_rule_dir(tmp_path)
    with pytest.raises(RuleError, match="not a directory"):
        load_rule_dir(tmp_path / "missing")
