"""Property tests for the new document kinds: whatever an exception, correlation, value list
or advisory file holds, the loader answers with a value or our error, never a crash."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.errors import RuleError
from collector.governance import parse_rules
from collector.governance.advisories import parse_advisories
from collector.governance.lists import parse_list

SETTINGS = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
RULE_ID = "12121212-1212-4212-8212-121212121212"
RULE = f"""\
title: r
id: {RULE_ID}
level: low
logsource: {{product: shadowai, category: model_file}}
detection:
  sel: {{ai.model.format: gguf}}
  condition: sel
"""
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=12),
    st.sampled_from([RULE_ID, "2027-01-01", "any", "1d", "0s", "gte", "%approved%", "value_count"]),
)
KEYS = [
    *["title", "id", "owner", "reason", "expires", "level", "status", "action", "logsource"],
    *["filter", "rules", "condition", "sel", "correlation", "type", "group-by", "timespan"],
    *["gte", "field", "aliases", "generate", "product", "category", "ai.model.name|expand"],
]
VALUES: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=12,
)


def loads_or_refuses(document: dict[str, Any]) -> None:
    try:
        text = yaml.safe_dump(document, allow_unicode=True)
    except yaml.YAMLError:
        return
    try:
        parse_rules([("r.yml", RULE), ("d.yml", text)], {"approved": ("x",)})
    except RuleError as exc:
        assert exc.problems and all(isinstance(p, str) for p in exc.problems)


@SETTINGS
@given(
    st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=8),
    st.sampled_from(["filter", "correlation"]),
)
def test_any_exception_or_correlation_document_loads_or_is_refused(
    document: dict[str, Any], kind: str
) -> None:
    document.setdefault(kind, {})
    loads_or_refuses(document)


@SETTINGS
@given(
    st.fixed_dictionaries(
        {
            "title": st.just("x"),
            "id": st.just("13131313-1313-4313-8313-131313131313"),
            "owner": SCALARS,
            "reason": SCALARS,
            "expires": SCALARS,
            "logsource": st.just({"product": "shadowai", "category": "model_file"}),
            "filter": st.fixed_dictionaries(
                {"rules": st.one_of(SCALARS, st.lists(SCALARS, max_size=2)), "condition": SCALARS},
                optional={"sel": VALUES},
            ),
        }
    )
)
def test_nearly_valid_exceptions_load_or_are_refused(document: dict[str, Any]) -> None:
    loads_or_refuses(document)


@SETTINGS
@given(st.text(max_size=200))
def test_any_value_list_text_parses_or_reports(text: str) -> None:
    problems: list[str] = []
    values = parse_list("l.yml", text, problems)
    assert isinstance(values, tuple) and all(isinstance(v, str) for v in values)
    assert all(isinstance(p, str) for p in problems)


@SETTINGS
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["runtime", "cve", "fixed", "introduced", "reference", "summary"]),
            SCALARS,
        ),
        max_size=4,
    )
)
def test_any_advisory_list_parses_or_reports(entries: list[dict[str, Any]]) -> None:
    problems: list[str] = []
    found = parse_advisories("a.yml", yaml.safe_dump(entries), problems)
    for advisory in found:
        advisory.covers("1.2.3")
        advisory.covers("b100")
