"""Tasks the watchdog set aside: each for a day after it tripped a limit, plus the restart
count, in one small file the supervisor writes and the worker reads."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agent.atomic import write_private

log = logging.getLogger(__name__)

QUARANTINE_FILE = "quarantine.json"
MAX_ENTRIES = 1000


@dataclass(frozen=True)
class Quarantine:
    until: Mapping[str, float] = field(default_factory=dict)  # task -> wall-clock expiry
    restarts: int = 0
    reasons: Mapping[str, str] = field(default_factory=dict)  # task -> "cpu" or "memory"

    def active(self, now: float) -> list[str]:
        return sorted(task for task, until in self.until.items() if until > now)

    def add(self, task: str, reason: str, *, now: float, seconds: float) -> Quarantine:
        until = {t: u for t, u in self.until.items() if u > now}
        until[task] = now + seconds
        if len(until) > MAX_ENTRIES:  # keep the latest; a flood must not grow the file
            until = dict(sorted(until.items(), key=lambda i: i[1])[-MAX_ENTRIES:])
        reasons = {t: r for t, r in self.reasons.items() if t in until}
        reasons[task] = reason
        return Quarantine(until, self.restarts, reasons)

    def restarted(self) -> Quarantine:
        return Quarantine(self.until, self.restarts + 1, self.reasons)

    def paths(self, now: float) -> list[str]:
        """The files set aside, for the walker to skip."""
        return [t.split(":", 1)[1] for t in self.active(now) if t.startswith("file:")]


def load_quarantine(path: Path) -> Quarantine:
    try:
        raw = json.loads(path.read_text())
        until = {str(k): float(v) for k, v in dict(raw.get("until", {})).items()}
        reasons = {str(k): str(v) for k, v in dict(raw.get("reasons", {})).items()}
        return Quarantine(until, int(raw.get("restarts", 0)), reasons)
    except FileNotFoundError:
        return Quarantine()
    except (ValueError, TypeError, AttributeError) as exc:
        log.warning("%s: unreadable quarantine, starting empty: %s", path, exc)
        return Quarantine()


def save_quarantine(path: Path, quarantine: Quarantine) -> None:
    data = {
        "until": dict(quarantine.until),
        "restarts": quarantine.restarts,
        "reasons": dict(quarantine.reasons),
    }
    write_private(path, json.dumps(data, sort_keys=True).encode())
