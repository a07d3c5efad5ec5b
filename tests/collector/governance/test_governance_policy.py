"""Value lists, exceptions with expiry, per-rule actions and what `validate` and `rules test`
say about them."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from collector.errors import RuleError
from collector.governance import load_rule_dir, parse_rules, run_rule_tests

RULE_ID = "11111111-1111-4111-8111-111111111111"
RULE = f"""\
title: unapproved model
id: {RULE_ID}
status: test
level: medium
logsource: {{product: shadowai, category: model_file}}
detection:
  model: {{ai.model.format|exists: true}}
  approved: {{ai.model.name|expand: '%approved%'}}
  condition: model and not approved
"""
WAIVER = f"""\
title: build box
id: 22222222-2222-4222-8222-222222222222
owner: ml-platform@example.com
reason: evaluation, SEC-1234
expires: 2027-03-31
logsource: {{product: shadowai, category: model_file}}
filter:
  rules: [{RULE_ID}]
  box: {{host.name: ml-build-01}}
  condition: not box
"""
EVENT = {
    "event.dataset": "shadowai.model_file",
    "ai.model.format": "gguf",
    "host.name": "ml-build-01",
}


def fired(ruleset_text: list[tuple[str, str]], event: dict[str, object], **kw: object) -> bool:
    lists = kw.pop("lists", {"approved": ()})
    ruleset = parse_rules(ruleset_text, lists)  # type: ignore[arg-type]
    return any(m.rule_id == RULE_ID for m in ruleset.evaluate(event, **kw))  # type: ignore[arg-type]


def test_an_empty_list_approves_nothing_and_a_listed_name_is_approved_with_wildcards() -> None:
    rules = [("r.yml", RULE)]
    assert fired(rules, {**EVENT, "ai.model.name": "Llama-3-8B"})
    lists = {"approved": ("llama-3-*", "Qwen2")}
    assert not fired(rules, {**EVENT, "ai.model.name": "Llama-3-8B"}, lists=lists)
    assert fired(rules, {**EVENT, "ai.model.name": "Qwen2.5"}, lists=lists)


def test_value_lists_load_from_the_lists_folder_beside_the_rules(tmp_path: Path) -> None:
    (tmp_path / "lists").mkdir()
    (tmp_path / "r.yml").write_text(RULE)
    (tmp_path / "lists" / "approved.yml").write_text("# reviewed models\n- Llama-3-8B\n")
    ruleset = load_rule_dir(tmp_path)
    assert ruleset.evaluate({**EVENT, "ai.model.name": "llama-3-8b"}) == []
    (tmp_path / "lists" / "approved.yml").write_text("approved: [not, a, list]\n")
    with pytest.raises(RuleError, match=r"approved.yml:1: a value list must be a YAML list"):
        load_rule_dir(tmp_path)


def test_an_exception_applies_until_the_day_it_expires() -> None:
    rules = [("r.yml", RULE), ("x.yml", WAIVER)]
    assert not fired(rules, EVENT, today=date(2027, 3, 30))
    assert fired(rules, EVENT, today=date(2027, 3, 31)), "stops applying on its expiry day"
    assert fired(rules, EVENT), "without a date no exception applies (fail closed)"
    assert fired(rules, {**EVENT, "host.name": "laptop-7"}, today=date(2027, 1, 1))


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ("owner: ml-platform@example.com\n", "owner: required"),
        ("reason: evaluation, SEC-1234\n", "reason: required"),
        ("expires: 2027-03-31\n", "expires: required"),
    ],
)
def test_an_exception_without_owner_reason_or_expiry_is_refused(change: str, problem: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rules([("r.yml", RULE), ("x.yml", WAIVER.replace(change, ""))], {"approved": ()})
    assert any(problem in p and p.startswith("x.yml:") for p in caught.value.problems)


def test_an_exception_naming_an_unknown_rule_is_refused_with_every_other_problem() -> None:
    broken = WAIVER.replace(RULE_ID, "99999999-9999-4999-8999-999999999999").replace(
        "owner: ml-platform@example.com\n", ""
    )
    with pytest.raises(RuleError) as caught:
        parse_rules([("r.yml", RULE), ("x.yml", broken)], {"approved": ()})
    problems = "\n".join(caught.value.problems)
    assert "unknown rule 99999999-9999-4999-8999-999999999999" in problems
    assert "owner: required" in problems


def test_record_rules_match_without_alerting_and_an_unknown_action_is_refused() -> None:
    record = RULE.replace("status: test\n", "status: test\naction: record\n")
    (match,) = parse_rules([("r.yml", record)], {"approved": ()}).evaluate(EVENT)
    assert (match.action, match.level) == ("record", "medium")
    with pytest.raises(RuleError, match=r"r.yml:4: action: must be one of alert, record"):
        parse_rules([("r.yml", RULE.replace("status: test\n", "status: test\naction: page\n"))])


def test_validate_reports_a_bad_category_beside_a_broken_detection() -> None:
    text = RULE.replace("category: model_file", "category: laptops").replace(
        "exists: true", "exists: maybe"
    )
    with pytest.raises(RuleError) as caught:
        parse_rules([("r.yml", text)], {"approved": ()})
    problems = caught.value.problems
    assert any("logsource.category: unknown 'laptops'" in p for p in problems)
    assert any("detection.model" in p for p in problems)


def test_rules_test_fails_an_untested_rule_unless_it_is_experimental() -> None:
    ruleset = parse_rules([("r.yml", RULE)], {"approved": ()})
    (result,) = run_rule_tests(ruleset, [])
    assert (result.passed, result.case, result.file, result.line) == (
        False,
        "(no test cases)",
        "r.yml",
        1,
    )
    experimental = parse_rules(
        [("r.yml", RULE.replace("status: test", "status: experimental"))], {"approved": ()}
    )
    assert run_rule_tests(experimental, []) == []


def test_rule_cases_run_through_exceptions_on_their_day() -> None:
    ruleset = parse_rules([("r.yml", RULE), ("x.yml", WAIVER)], {"approved": ()})
    cases = f"""\
rule: {RULE_ID}
cases:
  - name: excepted while it applies
    today: 2027-01-01
    event: {{event.dataset: shadowai.model_file, ai.model.format: gguf, host.name: ml-build-01}}
    match: false
  - name: back once it expired
    today: 2027-04-01
    event: {{event.dataset: shadowai.model_file, ai.model.format: gguf, host.name: ml-build-01}}
    match: true
"""
    assert [r.passed for r in run_rule_tests(ruleset, [("t.yml", cases)])] == [True, True]


CORRELATIONS = f"""\
title: bursts
id: 23232323-2323-4323-8323-232323232323
status: test
level: high
correlation:
  type: event_count
  rules: [{RULE_ID}]
  group-by: [host.name]
  timespan: 10m
  condition: {{gt: 2}}
---
title: both
id: 34343434-3434-4343-8343-343434343434
status: test
level: high
correlation:
  type: temporal
  rules: [{RULE_ID}, 45454545-4545-4545-8545-454545454545]
  group-by: [host.name]
  timespan: 1h
---
title: exposed
id: 45454545-4545-4545-8545-454545454545
status: test
level: high
logsource: {{product: shadowai, category: inference_process}}
detection:
  sel: {{ai.listen.exposed: true}}
  condition: sel
"""
MODEL = "{event.dataset: shadowai.model_file, ai.model.format: gguf, host.name: h1"
SERVER = "{event.dataset: shadowai.inference_process, ai.listen.exposed: true, host.name: h1"


def test_event_count_and_temporal_correlations_fire_on_their_windows() -> None:
    ruleset = parse_rules([("r.yml", RULE), ("c.yml", CORRELATIONS)], {"approved": ()})
    cases = f"""\
rule: 23232323-2323-4323-8323-232323232323
cases:
  - name: three within ten minutes
    events: [{MODEL}}}, {MODEL}}}, {MODEL}}}]
    match: true
  - name: two
    events: [{MODEL}}}, {MODEL}}}]
    match: false
  - name: three spread over an hour
    events:
      - {MODEL}, '@timestamp': '2027-01-01T10:00:00+00:00'}}
      - {MODEL}, '@timestamp': '2027-01-01T10:30:00+00:00'}}
      - {MODEL}, '@timestamp': '2027-01-01T11:00:00+00:00'}}
    match: false
---
rule: 34343434-3434-4343-8343-343434343434
cases:
  - name: a model and an exposed server on one host
    events: [{MODEL}}}, {SERVER}}}]
    match: true
  - name: on two hosts
    events: [{MODEL}}}, {SERVER.replace("h1", "h2")}}}]
    match: false
"""
    results = run_rule_tests(ruleset, [("t.yml", cases)])
    assert [(r.case, r.passed) for r in results if r.case != "(no test cases)"] == [
        ("three within ten minutes", True),
        ("two", True),
        ("three spread over an hour", True),
        ("a model and an exposed server on one host", True),
        ("on two hosts", True),
    ]


def test_a_list_of_thousands_loads_and_matches_by_name_digest_or_pattern() -> None:
    names = (*(f"Model-{i}" for i in range(5000)), "Qwen2.5-*")
    rules = [("r.yml", RULE)]
    assert not fired(rules, {**EVENT, "ai.model.name": "model-4999"}, lists={"approved": names})
    assert not fired(rules, {**EVENT, "ai.model.name": "qwen2.5-7b"}, lists={"approved": names})
    assert fired(rules, {**EVENT, "ai.model.name": "Model-5000"}, lists={"approved": names})
