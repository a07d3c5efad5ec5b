"""The values the rule engine hands out: compiled rules, exceptions, correlations, rule sets
and the matches they report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date

from collector.governance.advisories import Advisory, vulnerability_fields
from collector.governance.index import Key, RuleIndex

Event = Mapping[str, object]
Matcher = Callable[[Event], bool]
ACTIONS = ("alert", "record")


@dataclass(frozen=True)
class Match:
    """One rule that fired on one event; `action` says whether it raises an alert."""

    rule_id: str
    title: str
    level: str
    tags: tuple[str, ...]
    action: str = "alert"


@dataclass(frozen=True)
class Rule:
    """A validated Sigma rule compiled into a matcher; build it with `parse_rules`."""

    id: str
    title: str
    level: str
    description: str
    tags: tuple[str, ...]
    dataset: str | None  # None: the rule looks at every shadowai dataset
    source: str  # "path:line" of the rule document
    matcher: Matcher = field(repr=False, compare=False)
    action: str = "alert"
    status: str = ""
    keys: frozenset[Key] | None = field(default=None, repr=False, compare=False)

    def matches(self, event: Event) -> bool:
        if self.dataset is not None and event.get("event.dataset") != self.dataset:
            return False
        return self.matcher(event)


@dataclass(frozen=True)
class Waiver:
    """An exception (a Sigma filter file): while it applies, its rules fire only on events
    its condition keeps. It stops applying on its `expires` day."""

    id: str
    title: str
    owner: str
    reason: str
    expires: date
    rule_ids: tuple[str, ...]
    source: str
    keeps: Matcher = field(repr=False, compare=False)

    def applies(self, today: date | None) -> bool:
        return today is not None and today < self.expires


@dataclass(frozen=True)
class Correlation:
    """A Sigma correlation rule over matches of other rules within a time window."""

    id: str
    title: str
    level: str
    kind: str  # event_count, value_count, temporal
    rule_ids: tuple[str, ...]
    group_by: tuple[str, ...]
    seconds: int
    op: str  # gte, gt, lte, lt, eq, neq
    count: int | float
    value_field: str | None  # value_count's field
    source: str
    action: str = "alert"
    status: str = ""
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuleSet:
    """Rules in load order, with their exceptions and the correlations built on them.

    `evaluate` runs only the rules whose dataset fits the event and whose required field
    values (the index) the event has; exceptions apply while not expired on `today`.
    """

    rules: tuple[Rule, ...]
    waivers: tuple[Waiver, ...] = ()
    correlations: tuple[Correlation, ...] = ()
    advisories: tuple[Advisory, ...] = ()
    _index: RuleIndex = field(init=False, repr=False, compare=False)
    _waivers_of: dict[str, tuple[Waiver, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _correlations_of: dict[str, tuple[Correlation, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "_index", RuleIndex([(rule.dataset, rule.keys) for rule in self.rules])
        )
        for waiver in self.waivers:
            for rule_id in waiver.rule_ids:
                self._waivers_of[rule_id] = (*self._waivers_of.get(rule_id, ()), waiver)
        for correlation in self.correlations:
            for rule_id in correlation.rule_ids:
                found = self._correlations_of.get(rule_id, ())
                self._correlations_of[rule_id] = (*found, correlation)

    def enrich(self, event: Event) -> dict[str, object]:
        """Fields the collector adds before evaluation: known vulnerabilities of the runtime."""
        return vulnerability_fields(event, self.advisories)

    def evaluate(self, event: Event, *, today: date | None = None) -> list[Match]:
        """The rules that fire on `event`; without `today` no exception applies (fail closed)."""
        matches = []
        for position in self._index.candidates(event):
            rule = self.rules[position]
            if not rule.matcher(event) or self._waived(rule.id, event, today):
                continue
            matches.append(Match(rule.id, rule.title, rule.level, rule.tags, rule.action))
        return matches

    def _waived(self, rule_id: str, event: Event, today: date | None) -> bool:
        if not self._waivers_of:
            return False
        waivers = self._waivers_of.get(rule_id)
        if not waivers:
            return False
        return any(w.applies(today) and not w.keeps(event) for w in waivers)

    def expired(self, today: date) -> tuple[Waiver, ...]:
        """Exceptions that no longer apply on `today`."""
        return tuple(waiver for waiver in self.waivers if not waiver.applies(today))

    def correlations_of(self, rule_id: str) -> tuple[Correlation, ...]:
        return self._correlations_of.get(rule_id, ())
