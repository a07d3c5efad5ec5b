"""The collector's one error base, and the few subclasses that someone catches."""

from __future__ import annotations

from typing import Any


class CollectorError(Exception):
    """Something the collector could not do, with where and why."""


class RuleError(CollectorError):
    """One or more governance rules are invalid; `problems` lists each with its location."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class RefusedEnvelope(CollectorError):
    """An agent sent an envelope we will not believe; `code` names the check that failed.

    `link` is set (a collector.chain.Link) when the envelope chains correctly and only its
    content is refused, so that the chain moves past it.
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.link: Any = None
