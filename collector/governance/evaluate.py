"""Compile pySigma's parsed condition trees into matchers over flat events (Sigma semantics).

Strings compare case-insensitively unless |cased; a list in the event matches if any element
does; a missing field matches nothing but `null`; |re searches (unanchored) with RE2.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from ipaddress import ip_address

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.policy import default_policy
from sigma.policy.regex_engine import RegexPattern
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SigmaType,
    SpecialChars,
)

from collector.governance.model import Event, Matcher

Check = Callable[[object], bool]  # does one scalar event value satisfy one rule value
Report = Callable[[str | None, str], None]  # (field, or None for a keyword; reason)
Fail = Callable[[str], None]

MAX_DEPTH = 64  # deeper trees would risk the evaluator's recursion limit at match time
_SURROGATE = re.compile("[\ud800-\udfff]")
_NUMERIC = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_COMPARE: dict[CompareOperators, Callable[[float, float], bool]] = {
    CompareOperators.LT: operator.lt,
    CompareOperators.LTE: operator.le,
    CompareOperators.GT: operator.gt,
    CompareOperators.GTE: operator.ge,
    CompareOperators.NEQ: operator.ne,
}
_RE_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: re.IGNORECASE,
    SigmaRegularExpressionFlag.MULTILINE: re.MULTILINE,
    SigmaRegularExpressionFlag.DOTALL: re.DOTALL,
}


def compile_condition(node: object, report: Report) -> Matcher:
    """Turn one postprocessed condition tree into a matcher; problems go to `report`."""
    if _depth(node) > MAX_DEPTH:
        report(None, f"condition nests deeper than {MAX_DEPTH} levels")
        return _never
    return _compile(node, report)


def _depth(root: object) -> int:
    deepest = 0
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, (ConditionAND, ConditionOR, ConditionNOT)) and depth <= MAX_DEPTH:
            stack.extend((arg, depth + 1) for arg in node.args)
    return deepest


def _compile(node: object, report: Report) -> Matcher:
    if isinstance(node, (ConditionAND, ConditionOR)):
        parts = tuple(_compile(arg, report) for arg in node.args)
        return _all_of(parts) if isinstance(node, ConditionAND) else _any_of(parts)
    if isinstance(node, ConditionNOT):
        inner = _compile(node.args[0], report)
        return lambda event: not inner(event)
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _field_matcher(node.field, node.value, report)
    if isinstance(node, ConditionValueExpression):
        return _keyword_matcher(node.value, report)
    report(None, f"condition element {type(node).__name__} cannot be evaluated")
    return _never


def _never(event: Event) -> bool:
    return False


def _all_of(parts: tuple[Matcher, ...]) -> Matcher:
    return lambda event: all(part(event) for part in parts)


def _any_of(parts: tuple[Matcher, ...]) -> Matcher:
    return lambda event: any(part(event) for part in parts)


def _is_empty(value: object) -> bool:
    return value is None or (isinstance(value, (list, tuple)) and not value)


def _field_matcher(field: str, value: SigmaType, report: Report) -> Matcher:
    if isinstance(value, SigmaNull):
        return lambda event: _is_empty(event.get(field))
    if isinstance(value, SigmaExists):
        wanted = value.exists
        return lambda event: _is_empty(event.get(field)) is not wanted
    check = value_check(value, lambda reason: report(field, reason))
    if check is None:
        return _never

    def match(event: Event) -> bool:
        found = event.get(field)
        if found is None:
            return False
        if isinstance(found, (list, tuple)):
            return any(check(item) for item in found)
        return check(found)

    return match


def _keyword_matcher(value: SigmaType, report: Report) -> Matcher:
    """Keywords are a full-text search: they look inside every string value of the event."""
    check = value_check(value, lambda reason: report(None, reason), keyword=True)
    if check is None:
        return _never
    found_check: Check = check

    def match(event: Event) -> bool:
        for found in event.values():
            items = found if isinstance(found, (list, tuple)) else (found,)
            if any(found_check(item) for item in items):
                return True
        return False

    return match


def value_check(value: SigmaType, fail: Fail, keyword: bool = False) -> Check | None:
    """A check for one rule value, or None after calling `fail` if it cannot be evaluated."""
    if isinstance(value, SigmaExpansion):
        return _expansion_check(value, fail, keyword)
    if isinstance(value, SigmaString):
        return _string_check(value, fail, keyword)
    if isinstance(value, SigmaRegularExpression):
        return _regex_check(value, fail, keyword)
    if isinstance(value, SigmaTimestampPart):  # before SigmaNumber, its base class
        fail("timestamp part modifiers (|minute, |hour, ...) are not supported")
        return None
    if isinstance(value, SigmaNumber):
        number = value.number
        return lambda found: _as_number(found) == number
    if isinstance(value, SigmaBool):
        return _bool_check(value.boolean)
    if isinstance(value, SigmaCompareExpression):
        return _compare_check(value)
    if isinstance(value, SigmaCIDRExpression):
        return _cidr_check(value)
    if isinstance(value, SigmaFieldReference):
        fail("|fieldref is not supported")
        return None
    if isinstance(value, (SigmaNull, SigmaExists)):
        fail("null and |exists need a field")
        return None
    fail(f"values of type {type(value).__name__} are not supported")
    return None


def _expansion_check(value: SigmaExpansion, fail: Fail, keyword: bool) -> Check | None:
    """Any of the values; plain strings (value lists are mostly names and digests) are one
    set lookup instead of a comparison each."""
    exact: set[str] = set()
    others = []
    for item in value.values:
        plain = None if keyword else _plain_folded(item)
        if plain is None:
            others.append(item)
        else:
            exact.add(plain)
    checks = [value_check(item, fail, keyword) for item in others]
    valid = tuple(check for check in checks if check is not None)
    if len(valid) != len(checks):
        return None
    members = frozenset(exact)
    if not valid:
        return lambda found: (text := _lower_text(found)) is not None and text in members
    return lambda found: (
        ((text := _lower_text(found)) is not None and text in members)
        or any(check(found) for check in valid)
    )


def _plain_folded(value: SigmaType) -> str | None:
    """The folded text a case-insensitive string without wildcards equals, else None."""
    if type(value) is not SigmaString or any(isinstance(p, Placeholder) for p in value.s):
        return None
    if not all(isinstance(part, str) for part in value.s):
        return None
    return "".join(str(part).lower() for part in value.s)


def _text(found: object) -> str | None:
    """The text a string pattern is compared with; None for values no string can match."""
    if isinstance(found, str):
        return found
    if isinstance(found, bool):
        return "true" if found else "false"
    if isinstance(found, (int, float)):
        try:
            return str(found)
        except ValueError:  # an int too long for Python to print
            return None
    return None


def _lower_text(found: object) -> str | None:
    text = _text(found)
    return None if text is None else text.lower()


def _str_only(fold: Callable[[object], str | None]) -> Callable[[object], str | None]:
    return lambda found: fold(found) if isinstance(found, str) else None


def _string_check(value: SigmaString, fail: Fail, keyword: bool) -> Check | None:
    if any(isinstance(part, Placeholder) for part in value.s):
        fail("placeholders (|expand) are not supported")
        return None
    cased = isinstance(value, SigmaCasedString)
    fold: Callable[[object], str | None] = _text if cased else _lower_text
    parts: list[str | SpecialChars] = [
        part if cased or not isinstance(part, str) else part.lower()
        for part in value.s
        if not isinstance(part, Placeholder)
    ]
    if keyword:
        fold = _str_only(fold)
        parts = [SpecialChars.WILDCARD_MULTI, *parts, SpecialChars.WILDCARD_MULTI]
    if all(isinstance(part, str) for part in parts):
        target = "".join(str(part) for part in parts)
        return lambda found: fold(found) == target
    if SpecialChars.WILDCARD_SINGLE not in parts:
        segments = _segments(parts)
        return lambda found: (text := fold(found)) is not None and _glob(text, segments)
    source = _wildcard_regex(parts)
    if parts.count(SpecialChars.WILDCARD_MULTI) <= 1:
        # Python's re is faster, and with a single '.*' it cannot backtrack badly.
        simple = re.compile(source, re.DOTALL)
        return lambda found: (text := fold(found)) is not None and bool(simple.fullmatch(text))
    pattern = _compile_regex(source, re.DOTALL, fail)
    if pattern is None:
        return None
    matcher: RegexPattern = pattern
    return lambda found: (text := fold(found)) is not None and _fullmatch(matcher, text)


def _segments(parts: Sequence[str | SpecialChars]) -> tuple[str, ...]:
    """The literal runs between `*` wildcards: ['a', *, 'b'] -> ('a', 'b')."""
    segments = [""]
    for part in parts:
        if isinstance(part, str):
            segments[-1] += part
        else:
            segments.append("")
    return tuple(segments)


def _glob(text: str, segments: tuple[str, ...]) -> bool:
    """Match a `*`-only pattern; leftmost placement of each middle segment is always safe."""
    first, last = segments[0], segments[-1]
    end = len(text) - len(last)
    if end < len(first) or not text.startswith(first) or not text.endswith(last):
        return False
    position = len(first)
    for segment in segments[1:-1]:
        found = text.find(segment, position, end)
        if found < 0:
            return False
        position = found + len(segment)
    return True


def _wildcard_regex(parts: Sequence[str | SpecialChars]) -> str:
    pieces = {SpecialChars.WILDCARD_MULTI: ".*", SpecialChars.WILDCARD_SINGLE: "."}
    return "".join(re.escape(part) if isinstance(part, str) else pieces[part] for part in parts)


def _scrub(text: str) -> str:
    """RE2 takes UTF-8; lone surrogates in an event become U+FFFD instead of an exception."""
    return _SURROGATE.sub("\ufffd", text)


def _fullmatch(pattern: RegexPattern, text: str) -> bool:
    try:
        return pattern.fullmatch(text) is not None
    except UnicodeEncodeError:
        return pattern.fullmatch(_scrub(text)) is not None


def _search(pattern: RegexPattern, text: str) -> bool:
    try:
        return pattern.search(text) is not None
    except UnicodeEncodeError:
        return pattern.search(_scrub(text)) is not None


def _compile_regex(source: str, flags: int, fail: Fail) -> RegexPattern | None:
    """Compile with pySigma's engine (RE2: linear time, whatever an event holds)."""
    engine = default_policy.regex_engine
    try:
        return engine.compile(source, flags)
    except (engine.error, UnicodeEncodeError) as exc:
        fail(f"regular expression {source!r} is invalid: {exc}")
        return None


def _regex_check(value: SigmaRegularExpression, fail: Fail, keyword: bool) -> Check | None:
    flags = 0
    for flag in value.flags:
        flags |= _RE_FLAGS[flag]
    pattern = _compile_regex(str(value.regexp), flags, fail)
    if pattern is None:
        return None
    matcher: RegexPattern = pattern
    text_of = _str_only(_text) if keyword else _text
    return lambda found: (text := text_of(found)) is not None and _search(matcher, text)


def _as_number(found: object) -> int | float | None:
    """Numbers compare numerically, and so do strings that are plainly decimal numbers."""
    if isinstance(found, bool):
        return None
    if isinstance(found, (int, float)):
        return found
    if isinstance(found, str) and len(found) <= 64 and _NUMERIC.fullmatch(found):
        try:
            return int(found)
        except ValueError:
            return float(found)
    return None


def _bool_check(wanted: bool) -> Check:
    text = "true" if wanted else "false"

    def check(found: object) -> bool:
        if isinstance(found, bool):
            return found is wanted
        return isinstance(found, str) and found.lower() == text

    return check


def _compare_check(value: SigmaCompareExpression) -> Check:
    compare = _COMPARE[value.op]
    limit = value.number.number

    def check(found: object) -> bool:
        number = _as_number(found)
        return number is not None and compare(number, limit)

    return check


def _cidr_check(value: SigmaCIDRExpression) -> Check:
    network = value.network

    def check(found: object) -> bool:
        if not isinstance(found, str):
            return False
        try:
            return ip_address(found) in network
        except ValueError:
            return False

    return check
