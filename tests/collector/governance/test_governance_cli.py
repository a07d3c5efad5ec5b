"""`shadowai-collector rules validate` and `rules test` as an operator runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.cli import main
from collector.governance import load_rule_dir

RULE = """\
title: gguf
id: aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa
status: test
level: medium
logsource: {product: shadowai, category: model_file}
detection:
  sel: {ai.model.format: gguf}
  condition: sel
"""
CASES = """\
rule: aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa
cases:
  - name: gguf
    event: {event.dataset: shadowai.model_file, ai.model.format: gguf}
    match: true
"""


def test_validate_prints_every_problem_of_every_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.yml").write_text(RULE.replace("level: medium", "level: loud"))
    (tmp_path / "b.yml").write_text(
        RULE.replace("aaaaaaaa-aaaa", "bbbbbbbb-bbbb").replace("model_file", "laptop")
    )
    assert main(["rules", "validate", str(tmp_path)]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert any("a.yml:4: level" in line for line in errors)
    assert any("b.yml:5: logsource.category" in line for line in errors)


def test_rules_test_fails_a_rule_without_cases_and_passes_once_it_has_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "r.yml").write_text(RULE)
    assert main(["rules", "test", str(tmp_path)]) == 1
    assert "no test cases" in capsys.readouterr().out
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "r.yml").write_text(CASES)
    assert main(["rules", "test", str(tmp_path)]) == 0
    assert "1 passed, 0 failed" in capsys.readouterr().out


def test_the_default_pack_validates_and_passes_its_tests(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pack = Path(__file__).resolve().parents[3] / "rules"
    assert main(["rules", "validate", str(pack)]) == 0
    assert "correlations OK" in capsys.readouterr().out
    assert main(["rules", "test", str(pack)]) == 0


def test_rules_convert_prints_a_query_for_every_rule_of_the_pack(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pack = Path(__file__).resolve().parents[3] / "rules"
    assert main(["rules", "convert", str(pack)]) == 0
    lines = capsys.readouterr().out.splitlines()
    headers = [i for i, line in enumerate(lines) if line.startswith("-- ")]
    ruleset = load_rule_dir(pack)
    assert len(headers) == len(ruleset.rules) + len(ruleset.correlations)
    for i in headers:
        assert lines[i + 1].startswith(("SELECT", "WITH")), lines[i]
    assert "cannot convert" not in "\n".join(lines)
