"""Property tests: whatever text or rule shape comes in, the engine answers with a RuleSet or a
RuleError, and evaluating whatever event never raises.
"""

from __future__ import annotations

import re

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.errors import RuleError
from collector.governance import RuleSet, parse_rules, run_rule_tests

PROPERTY_SETTINGS = settings(
    deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow]
)
LEVELS = ["informational", "low", "medium", "high", "critical", "urgent", ""]
FIELDS = ["ai.model.format", "file.path", "file.size", "ai.listen.address", "x", "", "a.b|c"]
MODIFIERS = [
    *["contains", "startswith", "endswith", "all", "cased", "re", "i", "m", "s", "cidr"],
    *["gt", "gte", "lt", "lte", "exists", "neq", "base64", "base64offset", "wide", "windash"],
    *["fieldref", "expand", "minute", "utf16", "nope", ""],
]
TEXT = st.text(st.one_of(st.characters(), st.sampled_from(["\ud800", "\udfff", "*", "?", "\\"])))
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    TEXT,
    st.sampled_from(["10.0.0.0/8", "::1/128", "gguf", "*a?", "(", "%x%", "1e5", "true"]),
)
YAML_TOKENS = [
    *["title: t\n", "id: 00000000-0000-4000-8000-000000000001\n", "level: high\n"],
    *["logsource: {product: shadowai, category: model_file}\n", "detection:\n", "  sel:\n"],
    *["    ai.model.format: gguf\n", "    x|re: '(a+)+'\n", "    y|cidr: 10.0.0.0/8\n"],
    *["  condition: sel\n", "  condition: not sel or 1 of s*\n", "---\n", "- ", "? ", ": "],
    *["&a ", "*a ", "[", "]", "{", "}", "'", '"', "|", ">", "\n", "  ", "!!python/name:os.system"],
    *["correlation:\n", "action: global\n", "<<: *a\n", "\t", "%YAML 1.1\n", "\x00", "\ufeff"],
    *["date: 2026-02-30\n", "n: " + "9" * 5000 + "\n", "!!binary x\n", "!!timestamp 1\n"],
    *["!!bool x\n", "!!int x\n", "!!float [1]\n", "!!set [a]\n", "!!omap {a: 1}\n"],
]


def parses_or_refuses(text: str) -> RuleSet | None:
    try:
        return parse_rules([("prop.yml", text)])
    except RuleError as exc:
        assert exc.problems and all(isinstance(problem, str) for problem in exc.problems)
        return None


@PROPERTY_SETTINGS
@given(TEXT)
def test_arbitrary_text_gives_a_ruleset_or_a_rule_error(text: str) -> None:
    parses_or_refuses(text)


@PROPERTY_SETTINGS
@given(st.lists(st.sampled_from(YAML_TOKENS), max_size=40).map("".join))
def test_yaml_ish_text_gives_a_ruleset_or_a_rule_error(text: str) -> None:
    parses_or_refuses(text)


def detection_keys() -> st.SearchStrategy[str]:
    modifiers = st.lists(st.sampled_from(MODIFIERS), max_size=2)
    return st.tuples(st.sampled_from(FIELDS), modifiers).map(lambda t: "|".join([t[0], *t[1]]))


DETECTION_VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=4))
SELECTION = st.one_of(
    st.dictionaries(detection_keys(), DETECTION_VALUES, min_size=1, max_size=4),
    st.lists(st.dictionaries(detection_keys(), DETECTION_VALUES, max_size=3), max_size=3),
    st.lists(SCALARS, max_size=3),
    SCALARS,
)
CONDITIONS = st.one_of(
    st.sampled_from(["sel", "not sel", "sel and other", "1 of sel*", "all of them", "sel |"]),
    st.sampled_from(["(sel or other) and not sel", "missing", "", "sel and (other"]),
    st.lists(st.sampled_from(["sel", "other"]), max_size=2),
    st.integers(),
)
DETECTIONS = st.one_of(
    st.fixed_dictionaries({"condition": st.just("sel"), "sel": SELECTION}),
    st.fixed_dictionaries(
        {"condition": CONDITIONS}, optional={"sel": SELECTION, "other": SELECTION}
    ),
    SCALARS,
)
GOOD_LOGSOURCE = st.fixed_dictionaries(
    {"product": st.just("shadowai")},
    optional={"category": st.sampled_from(["model_file", "inference_process", "agent_health"])},
)
LOGSOURCES = st.one_of(
    GOOD_LOGSOURCE,
    st.fixed_dictionaries(
        {},
        optional={
            "product": st.sampled_from(["shadowai", "windows", ""]),
            "category": st.sampled_from(["model_file", "x", ""]),
            "service": st.just("sshd"),
        },
    ),
    SCALARS,
)
OPTIONAL_FIELDS = {
    "status": st.sampled_from(["test", "stable", "nope"]),
    "tags": st.one_of(st.lists(st.sampled_from(["attack.t1", "x", "a.b", ""])), SCALARS),
    "date": st.sampled_from(["2026-11-22", "2026/11/22", "yesterday"]),
    "description": st.one_of(TEXT, st.integers()),
}
MOSTLY_VALID_RULES = st.fixed_dictionaries(
    {
        "title": st.one_of(st.just("t"), TEXT),
        "id": st.one_of(st.uuids().map(str), st.uuids().map(str), SCALARS),
        "level": st.one_of(st.sampled_from(LEVELS[:5]), st.sampled_from(LEVELS)),
        "logsource": st.one_of(GOOD_LOGSOURCE, LOGSOURCES),
        "detection": DETECTIONS,
    },
    optional=OPTIONAL_FIELDS,
)
ANY_RULES = st.fixed_dictionaries(
    {},
    optional={
        "title": st.one_of(TEXT, st.integers()),
        "id": SCALARS,
        "level": SCALARS,
        "logsource": LOGSOURCES,
        "detection": DETECTIONS,
        **OPTIONAL_FIELDS,
    },
)
RULES = st.one_of(MOSTLY_VALID_RULES, ANY_RULES)
WELL_FORMED_RULES = st.fixed_dictionaries(
    {
        "title": st.just("t"),
        "id": st.uuids().map(str),
        "level": st.sampled_from(LEVELS[:5]),
        "logsource": GOOD_LOGSOURCE,
        "detection": st.fixed_dictionaries(
            {
                "condition": st.sampled_from(["sel", "not sel", "sel or other", "all of them"]),
                "sel": st.dictionaries(detection_keys(), DETECTION_VALUES, min_size=1, max_size=3),
                "other": st.lists(SCALARS.filter(lambda v: v is not None), min_size=1, max_size=2),
            }
        ),
    }
)
EVENT_VALUES = st.one_of(
    SCALARS,
    st.just(10**5000),
    st.lists(SCALARS, max_size=4),
    st.dictionaries(TEXT, SCALARS, max_size=2),
    st.binary(max_size=8),
)
EVENTS = st.dictionaries(
    st.one_of(st.sampled_from([*FIELDS, "event.dataset"]), TEXT), EVENT_VALUES, max_size=8
)


@PROPERTY_SETTINGS
@given(st.lists(RULES, min_size=1, max_size=3), st.lists(EVENTS, max_size=3))
def test_arbitrary_rules_load_or_are_refused_and_never_raise_on_events(
    rules: list[dict[str, object]], events: list[dict[str, object]]
) -> None:
    ruleset = parses_or_refuses(yaml.safe_dump_all(rules, allow_unicode=True))
    if ruleset is not None:
        for event in events:
            assert isinstance(ruleset.evaluate(event), list)


@PROPERTY_SETTINGS
@given(WELL_FORMED_RULES, st.lists(EVENTS, max_size=4))
def test_well_formed_rules_with_any_values_compile_or_are_refused_and_never_raise(
    rule: dict[str, object], events: list[dict[str, object]]
) -> None:
    ruleset = parses_or_refuses(yaml.safe_dump(rule, allow_unicode=True))
    if ruleset is not None:
        for event in events:
            assert isinstance(ruleset.evaluate(event), list)


EVERY_KIND = """\
title: every kind of value
id: 00000000-0000-4000-8000-000000000001
level: high
logsource: {product: shadowai}
detection:
  strings:
    file.path|contains|all: [a, '*b?c*']
    ai.model.format|cased: GGUF
  numbers:
    file.size|gte: 10
    ai.model.parameters: 7
    ai.model.unsafe: true
  others:
    ai.listen.address|cidr: [10.0.0.0/8, 'fd00::/8']
    x|re|i: '^a.*z$'
    y: null
    z|exists: false
    w|base64offset|contains: secret
  keywords:
    - ollama
    - 'lm?studio'
  condition: 1 of strings or numbers or (others and not keywords)
"""
EVERY_KIND_SET = parse_rules([("every.yml", EVERY_KIND)])


@PROPERTY_SETTINGS
@given(EVENTS)
def test_arbitrary_events_never_make_evaluate_raise(event: dict[str, object]) -> None:
    matches = EVERY_KIND_SET.evaluate(event)
    assert all(match.rule_id.endswith("1") for match in matches)


GLOB_PATTERNS = st.text(st.sampled_from("ab*?"), max_size=8).filter(lambda p: "\\" not in p)


@PROPERTY_SETTINGS
@given(GLOB_PATTERNS, st.text(st.sampled_from("abAB\n"), max_size=10))
def test_wildcards_agree_with_a_reference_regex(pattern: str, value: str) -> None:
    text = (
        "title: glob\nid: 00000000-0000-4000-8000-000000000002\nlevel: low\n"
        f"logsource: {{product: shadowai}}\ndetection:\n  sel:\n    x: '{pattern}'\n"
        "  condition: sel\n"
    )
    (compiled,) = parse_rules([("glob.yml", text)]).rules
    reference = "".join({"*": ".*", "?": "."}.get(c, re.escape(c)) for c in pattern)
    expected = re.fullmatch(reference, value, re.DOTALL | re.IGNORECASE) is not None
    assert compiled.matches({"x": value}) is expected


@PROPERTY_SETTINGS
@given(st.one_of(TEXT, st.lists(st.sampled_from(YAML_TOKENS), max_size=30).map("".join)))
def test_arbitrary_rule_test_files_give_results_never_exceptions(text: str) -> None:
    results = run_rule_tests(EVERY_KIND_SET, [("t.yml", text)])
    assert all(result.passed or result.problem or result.got is not None for result in results)
