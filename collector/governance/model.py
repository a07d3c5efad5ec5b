"""The values the rule engine hands out: compiled rules, rule sets and the matches they report."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

Event = Mapping[str, object]
Matcher = Callable[[Event], bool]


@dataclass(frozen=True)
class Match:
    """One rule that fired on one event."""

    rule_id: str
    title: str
    level: str
    tags: tuple[str, ...]


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

    def matches(self, event: Event) -> bool:
        if self.dataset is not None and event.get("event.dataset") != self.dataset:
            return False
        return self.matcher(event)


@dataclass(frozen=True)
class RuleSet:
    """Rules in load order; `evaluate` only runs the rules whose dataset fits the event."""

    rules: tuple[Rule, ...]
    _by_dataset: dict[str, tuple[Rule, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _any_dataset: tuple[Rule, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        datasets = {rule.dataset for rule in self.rules if rule.dataset is not None}
        for dataset in datasets:
            self._by_dataset[dataset] = tuple(
                rule for rule in self.rules if rule.dataset in (None, dataset)
            )
        generic = tuple(rule for rule in self.rules if rule.dataset is None)
        object.__setattr__(self, "_any_dataset", generic)

    def evaluate(self, event: Event) -> list[Match]:
        dataset = event.get("event.dataset")
        candidates = self._any_dataset
        if isinstance(dataset, str):
            candidates = self._by_dataset.get(dataset, self._any_dataset)
        return [
            Match(rule.id, rule.title, rule.level, rule.tags)
            for rule in candidates
            if rule.matcher(event)
        ]
