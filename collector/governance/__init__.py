"""Governance: the security team's Sigma rules, validated by pySigma and compiled to matchers."""

from collector.governance.load import load_rule_dir, parse_rules
from collector.governance.model import Match, Rule, RuleSet
from collector.governance.ruletest import TestResult, run_rule_test_dir, run_rule_tests

__all__ = [
    "Match",
    "Rule",
    "RuleSet",
    "TestResult",
    "load_rule_dir",
    "parse_rules",
    "run_rule_test_dir",
    "run_rule_tests",
]
