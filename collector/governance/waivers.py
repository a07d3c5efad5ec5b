"""Exceptions: Sigma filter files (the `filter:` kind pySigma parses) that also say who owns
them, why they exist and the day they stop applying.

```yaml
title: Approved fine-tune on the ML team's build box
id: 0d9a...
owner: ml-platform@example.com
reason: evaluation of the approved model, ticket SEC-1234
expires: 2027-03-31
logsource: {product: shadowai, category: model_file}
filter:
  rules: [947ea717-87af-4be2-ad78-4af2b2871c5d]
  build_box: {host.name: ml-build-01}
  condition: not build_box
```
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from sigma.filters import SigmaFilter

from collector.governance.model import Matcher, Waiver
from collector.governance.source import Where

Compile = Callable[[Any, Where, list[str]], Matcher | None]


References = list[tuple[tuple[str, ...], Where]]


def parse_waiver(
    data: dict[Any, Any],
    where: Where,
    problems: list[str],
    compile_detections: Compile,
    references: References,
) -> Waiver | None:
    """An exception, or None after adding every problem found to `problems`; the rules it
    names go to `references` either way, so an unknown one is reported with the rest."""
    before = len(problems)
    owner, reason = _text(data, "owner", where, problems), _text(data, "reason", where, problems)
    expires = _expiry(data.get("expires"), where, problems)
    if not isinstance(data.get("id"), str):
        problems.append(where.at("id") + "required: a UUID naming this exception")
    rule_ids = _rule_ids(data.get("filter"), where, problems)
    references.append((rule_ids, where))
    try:
        parsed = SigmaFilter.from_dict(data, collect_errors=True)
    except Exception as exc:  # pySigma raises built-in errors on some malformed input
        problems.append(where.at("filter") + f"cannot be parsed ({type(exc).__name__}: {exc})")
        return None
    problems.extend(where.at("filter") + str(error) for error in parsed.errors)
    product = getattr(parsed.logsource, "product", None)
    if product != "shadowai":
        problems.append(where.at("logsource.product") + f"must be shadowai, not {product!r}")
    keeps = compile_detections(parsed.filter, where, problems) if not parsed.errors else None
    if len(problems) > before or keeps is None or expires is None:
        return None
    return Waiver(
        id=str(data["id"]).strip().lower(),
        title=str(data.get("title") or ""),
        owner=owner,
        reason=reason,
        expires=expires,
        rule_ids=rule_ids,
        source=f"{where.label}:{where.line}",
        keeps=keeps,
    )


def _text(data: dict[Any, Any], key: str, where: Where, problems: list[str]) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        what = "who answers for it" if key == "owner" else "why it exists"
        problems.append(where.at(key) + f"required: an exception says {what}")
        return ""
    return value.strip()


def _expiry(value: object, where: Where, problems: list[str]) -> date | None:
    if isinstance(value, date):  # YAML reads 2027-03-31 as a date already
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    problems.append(where.at("expires") + "required: the day it stops applying, YYYY-MM-DD")
    return None


def _rule_ids(section: object, where: Where, problems: list[str]) -> tuple[str, ...]:
    rules = section.get("rules") if isinstance(section, dict) else None
    if isinstance(rules, str) and rules.lower() != "any":
        rules = [rules]
    if not isinstance(rules, list) or not rules or not all(isinstance(r, str) for r in rules):
        problems.append(
            where.at("filter.rules") + "required: the ids of the rules it excepts ('any' is "
            "refused: an exception names what it waives)"
        )
        return ()
    return tuple(rule.strip().lower() for rule in rules)


def check_references(references: References, known: set[str], problems: list[str]) -> None:
    """Every exception must name rules that exist in the same rule set."""
    for rule_ids, where in references:
        for rule_id in rule_ids:
            if rule_id not in known:
                problems.append(where.at("filter.rules") + f"unknown rule {rule_id}")
