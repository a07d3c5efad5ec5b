"""The rule index only skips work: whatever the event, evaluate() through the index fires
exactly the rules that trying every rule would."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.governance import RuleSet, load_rule_dir, parse_rules
from collector.governance.index import condition_keys

RULES = Path(__file__).resolve().parents[3] / "rules"
EXTRA = """\
title: name {i}
id: 00000000-0000-4000-8000-{i:012d}
level: low
logsource: {{product: shadowai, category: {category}}}
detection:
  sel: {{{field}: {value}}}
  other: {{ai.model.format|contains: uf}}
  condition: {condition}
"""
FIELDS = ["ai.model.name", "ai.model.format", "ai.runtime.name", "ai.model.risk", "host.group"]
VALUES = ["gguf", "GGUF", "llama", "ollama", "dangerous", "lab", "Ünïcode", "42", "true"]
CONDITIONS = ["sel", "sel and other", "sel or other", "not sel", "1 of them"]


def extra_rules() -> list[tuple[str, str]]:
    texts = []
    for i in range(60):
        texts.append(
            (
                f"x{i}.yml",
                EXTRA.format(
                    i=i,
                    category=["model_file", "inference_process"][i % 2],
                    field=FIELDS[i % len(FIELDS)],
                    value=repr(VALUES[i % len(VALUES)]),
                    condition=CONDITIONS[i % len(CONDITIONS)],
                ),
            )
        )
    return texts


def brute_force(ruleset: RuleSet, event: dict[str, object]) -> list[str]:
    return [rule.id for rule in ruleset.rules if rule.matches(event)]


PACK = load_rule_dir(RULES)
MIXED = parse_rules(extra_rules())
values = st.one_of(
    st.sampled_from(VALUES),
    st.booleans(),
    st.integers(-5, 50),
    st.lists(st.sampled_from(VALUES), max_size=3),
    st.text(max_size=6),
)
events = st.fixed_dictionaries(
    {"event.dataset": st.sampled_from(["shadowai.model_file", "shadowai.inference_process", "x"])},
    optional={
        name: values
        for name in [
            *FIELDS,
            "event.action",
            "ai.model.kind",
            "ai.listen.exposed",
            "ai.model.origin",
        ]
    },
)


@settings(max_examples=400, deadline=None)
@given(event=events)
def test_the_index_never_changes_a_verdict(event: dict[str, object]) -> None:
    for ruleset in (PACK, MIXED):
        assert [m.rule_id for m in ruleset.evaluate(event)] == brute_force(ruleset, event)


def test_rules_on_plain_values_are_keyed_by_them() -> None:
    rule = MIXED.rules[0]  # ai.model.name: 'gguf', condition sel
    assert rule.keys == frozenset({("eq", "ai.model.name", "gguf")})
    negated = MIXED.rules[3]  # not sel: nothing an event must carry
    assert negated.keys is None
    assert condition_keys([]) == frozenset()
