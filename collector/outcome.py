"""Pure: what the rules' matches on one event become: alerts, tags on the event for
record-only rules, and entries for the correlation windows; and the alerts a correlation's
tally raises.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime

from collector.governance import RuleSet
from collector.governance.correlations import Tally, WindowEntry, fires, window_entry
from collector.governance.model import Correlation
from collector.store import NewAlert
from collector.store.lifecycle import fingerprint_of, subject_of


@dataclass
class Outcome:
    alerts: list[NewAlert] = field(default_factory=list)
    window: list[WindowEntry] = field(default_factory=list)


def evaluate_event(
    rules: RuleSet,
    flat: MutableMapping[str, object],
    *,
    agent_id: str,
    seq: int,
    now: datetime,
    into: Outcome,
) -> None:
    """Evaluate one event; matched rules are named on it (`rule.id`, `rule.name`)."""
    flat.update(rules.enrich(flat))
    matches = rules.evaluate(flat, today=now.date())
    if not matches:
        return
    flat["rule.id"] = [m.rule_id for m in matches]
    flat["rule.name"] = [m.title for m in matches]
    subject = subject_of(flat)
    fingerprint = fingerprint_of(flat)
    for match in matches:
        for correlation in rules.correlations_of(match.rule_id):
            entry = window_entry(correlation, match.rule_id, flat, agent_id, now)
            into.window.extend([entry] if entry is not None else [])
        if match.action != "alert":
            continue  # record-only: the tag on the stored event is the whole outcome
        into.alerts.append(
            NewAlert(
                rule_id=match.rule_id,
                rule_title=match.title,
                level=match.level,
                agent_id=agent_id,
                host_name=str(flat.get("host.name", "")),
                dedup_key=f"{match.rule_id}|{agent_id}|{subject}",
                event_seq=seq,
                summary=summary(flat, subject),
                at=now,
                subject=subject,
                fingerprint=fingerprint,
            )
        )


def correlation_alerts(
    rules: RuleSet,
    tallies: Mapping[tuple[str, str], Tally],
    entries: list[WindowEntry],
    now: datetime,
) -> list[NewAlert]:
    """An alert per correlation group whose window now meets its condition."""
    by_id = {c.id: c for c in rules.correlations}
    labels = {(e.correlation_id, e.group_key): e.group_label for e in entries}
    alerts = []
    for (correlation_id, group), tally in tallies.items():
        correlation = by_id.get(correlation_id)
        if correlation is None or correlation.action != "alert" or not fires(correlation, tally):
            continue
        alerts.append(
            _correlation_alert(correlation, group, labels[(correlation_id, group)], tally, now)
        )
    return alerts


def _correlation_alert(
    correlation: Correlation, group: str, label: str, tally: Tally, now: datetime
) -> NewAlert:
    counts = f"{tally.events} matches, {tally.values} distinct values, {tally.rules} rules"
    return NewAlert(
        rule_id=correlation.id,
        rule_title=correlation.title,
        level=correlation.level,
        agent_id="",  # a correlation spans the fleet
        host_name="",
        dedup_key=f"{correlation.id}|{group}",
        event_seq=0,
        summary=f"{label}: {counts} within {correlation.seconds} s",
        at=now,
        fingerprint=f"{tally.events}|{tally.values}|{tally.rules}",
    )


def summary(flat: Mapping[str, object], subject: str) -> str:
    if flat.get("event.dataset") == "shadowai.collector":
        text = f"agent {flat.get('agent.id') or '(collector)'}: {flat.get('event.reason')}"
        return f"{text}: {flat['message']}" if flat.get("message") else text
    details = [
        str(flat[name])
        for name in ("ai.model.format", "ai.model.name", "ai.model.quantization", "ai.runtime.name")
        if flat.get(name)
    ]
    return f"{subject} ({', '.join(details)})" if details else subject
