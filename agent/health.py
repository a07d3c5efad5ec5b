"""The agent about itself: CPU and memory from one long-lived process handle, and the
agent_health event assembled from what each part of the daemon reports."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

log = logging.getLogger(__name__)

MAX_LIST = 20


class Usage(Protocol):
    def sample(self) -> dict[str, Any]: ...


class SelfUsage:
    """CPU share since the previous sample, resident and private memory of this process.

    psutil's cpu_percent compares with the previous call on the same Process object, so the
    object lives as long as the agent; a new one each time would always say 0.0.
    """

    def __init__(self) -> None:
        import psutil

        self._me = psutil.Process()
        self._me.cpu_percent(interval=None)  # the baseline for the first sample

    def sample(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"agent.health.cpu_percent": self._me.cpu_percent(interval=None)}
        try:
            full = self._me.memory_full_info()  # reads smaps: once per health interval only
            fields["agent.health.rss_bytes"] = full.rss
            fields["agent.health.private_bytes"] = full.uss
        except Exception:  # AccessDenied on some systems: fall back to the resident size
            fields["agent.health.rss_bytes"] = self._me.memory_info().rss
        return fields


class NoUsage:
    """Without the agent extra (psutil) health omits CPU and memory."""

    def sample(self) -> dict[str, Any]:
        return {}


def self_usage() -> Usage:
    try:
        return SelfUsage()
    except ImportError:
        return NoUsage()


Part = Callable[[], Mapping[str, Any]]  # one part's agent.health.* fields


def health_event(parts: Mapping[str, Part]) -> dict[str, Any]:
    """Every part's fields in one agent_health event; a part that fails costs only its own."""
    fields: dict[str, Any] = {"event.dataset": "shadowai.agent_health"}
    for name, part in parts.items():
        try:
            fields.update(part())
        except Exception:
            log.exception("health: %s failed", name)
    for key, value in fields.items():
        if isinstance(value, list):
            fields[key] = value[:MAX_LIST]
    return fields
