"""The agent's one error base, and the few subclasses that someone catches."""

from __future__ import annotations


class AgentError(Exception):
    """Something the agent could not do, with where and why."""


class FormatError(AgentError):
    """Bytes that claim to be a model format but break its rules."""

    def __init__(self, fmt: str, offset: int, reason: str) -> None:
        super().__init__(f"{fmt}: at byte {offset}: {reason}")
        self.format = fmt
        self.offset = offset
        self.reason = reason


class SpoolError(AgentError):
    """The on-disk spool could not be read or written."""


class EnrollmentError(AgentError):
    """The agent is not enrolled, or enrollment was refused."""
