"""Which imports make a pickle dangerous to load: the allow-list and deny-list of risk_rules,
the longer matching entry winning, and names that reach past a module's surface.

A name neither allowed nor denied is suspicious: loading it runs code we have not vetted.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from agent.detect.formats.pickle_machine import COMPUTED
from agent.detect.formats.pickle_scan import PickleScan
from agent.detect.formats.risk_rules import ALLOW, ALLOW_PATTERNS, DENY
from agent.detect.frozen import quick_init

MAX_REASONS = 20
DANGEROUS, SUSPICIOUS, NONE = "dangerous", "suspicious", "none"
_ORDER = {None: 0, NONE: 1, SUSPICIOUS: 2, DANGEROUS: 3}
_DUNDER = re.compile(r"__\w+__")


class Verdict(Enum):
    ALLOWED = "allowed"
    DENIED = "denied"
    UNKNOWN = "unknown"


def _table(rows: Iterable[tuple[str, str, str]]) -> tuple[dict[str, str], tuple[str, ...]]:
    """(exact or dotted-prefix entries -> reason, string-prefix entries without their '*')."""
    exact: dict[str, str] = {}
    starred: list[str] = []
    for name, reason, _source in rows:
        if name.endswith("*"):
            starred.append(name[:-1])
        else:
            exact[name] = reason
    return exact, tuple(starred)


_DENY, _DENY_STARRED = _table(DENY)
_ALLOW, _ALLOW_STARRED = _table(ALLOW)
_ALLOW_RES = tuple(re.compile(pattern) for pattern, _, _ in ALLOW_PATTERNS)


def _match(name: str, exact: dict[str, str], starred: tuple[str, ...]) -> int:
    """Length of the longest entry covering `name`; 0 when none does."""
    best = max((len(s) for s in starred if name.startswith(s)), default=0)
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in exact:
            return max(best, len(prefix))
    return best


# Pure, and asked about the same few hundred names in every pickle of a scan; bounded, since
# the names come from the files.
@functools.lru_cache(maxsize=4096)
def verdict(name: str, qualname: str | None = None) -> Verdict:
    """Classify one import ("module.qualname"); `qualname` is the part after the module when
    known, so that attribute paths (pathlib + "os.system") are judged by where they lead."""
    denied = _match(name, _DENY, _DENY_STARRED)
    allowed = _match(name, _ALLOW, _ALLOW_STARRED)
    if denied and denied >= allowed:
        return Verdict.DENIED
    attrs = (qualname if qualname is not None else name.partition(".")[2]).split(".")
    if name not in _ALLOW and any(_DUNDER.fullmatch(a) and a != "__main__" for a in attrs):
        return Verdict.DENIED  # __builtins__, __globals__, __class__ ...: a sandbox escape
    if qualname is not None and "." in qualname and _tail_denied(attrs):
        return Verdict.DENIED
    if allowed or any(p.fullmatch(name) for p in _ALLOW_RES):
        return Verdict.ALLOWED
    return Verdict.UNKNOWN


def _tail_denied(attrs: list[str]) -> bool:
    """An attribute path through a module that reaches a denied one (pathlib.os.system)."""
    return any(_match(".".join(attrs[i:]), _DENY, _DENY_STARRED) for i in range(len(attrs) - 1))


def worst(*risks: str | None) -> str | None:
    """The highest of several risks; None only when none was judged."""
    return max(risks, key=lambda r: _ORDER[r], default=None)


@quick_init  # one per pickle judged: see agent.detect.frozen
@dataclass(frozen=True)
class Judgement:
    """A risk level and what was seen; `unsafe` exactly when the risk is dangerous."""

    risk: str | None
    reasons: tuple[str, ...] = ()

    @property
    def unsafe(self) -> bool | None:
        return None if self.risk is None else self.risk == DANGEROUS


_NOTHING = Judgement(NONE)


def judge(risk: str | None, *groups: Iterable[str]) -> Judgement:
    return Judgement(risk, combine(*groups))


def merge(*judgements: Judgement) -> Judgement:
    """Several parts of one file: the worst risk, every reason."""
    if len(judgements) == 1:
        return judgements[0]  # its reasons are combined already
    return judge(worst(*(j.risk for j in judgements)), *(j.reasons for j in judgements))


def judge_pickle(scan: PickleScan, *, unknown_is_suspicious: bool = True) -> Judgement:
    """Denied imports and computed import names are dangerous; unknown imports, extension
    codes and an unfinished walk are suspicious; allowed imports alone are none."""
    denied: list[str] = []
    unknown: list[str] = []
    imports = scan.imports
    qualnames: tuple[str | None, ...] = scan.qualnames
    if len(qualnames) != len(imports):
        qualnames = (None,) * len(imports)
    for name, qualname in zip(imports, qualnames, strict=True):
        v = verdict(name, qualname)
        if v is Verdict.DENIED:
            denied.append(f"dangerous import {name}")
        elif v is Verdict.UNKNOWN and unknown_is_suspicious:
            unknown.append(f"unknown import {name}")
    computed: list[str] = []
    other: list[str] = []
    for u in scan.unresolved:
        (computed if u.startswith(COMPUTED) else other).append(f"unresolved import: {u}")
    unfinished = [] if scan.complete else [f"pickle not fully scanned: {scan.stopped}"]
    if denied or computed:
        risk = DANGEROUS
    elif unknown or other or unfinished:
        risk = SUSPICIOUS
    else:
        return _NOTHING  # the common case: nothing to report
    return judge(risk, denied, computed, other, unknown, unfinished)


def pickle_reasons(scan: PickleScan, *, unknown_is_unsafe: bool = True) -> tuple[str, ...]:
    """What judge_pickle saw, as reasons only."""
    return judge_pickle(scan, unknown_is_suspicious=unknown_is_unsafe).reasons


def combine(*groups: Iterable[str]) -> tuple[str, ...]:
    """Reasons in order without repeats, capped at MAX_REASONS with a count of the rest."""
    seen: dict[str, None] = {}
    for group in groups:
        for reason in group:
            seen.setdefault(reason, None)
    reasons = list(seen)
    if len(reasons) <= MAX_REASONS:
        return tuple(reasons)
    rest = len(reasons) - (MAX_REASONS - 1)
    return (*reasons[: MAX_REASONS - 1], f"and {rest} more")
