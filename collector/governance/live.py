"""The rule set the collector runs, reloaded while it runs.

A poller compares the rules path's files (name, mtime, size) every `interval` seconds; a
change seen twice in a row (so a half-written file is not loaded) is validated in full and
swapped in as one reference assignment. A broken change keeps the last good set and says so:
in the log, in `status()` (the rules page) and as a shadowai.collector event. The same tick
reports each exception on the day it expires. Polling, not inotify: a handful of small files,
and no watch limits or event storms to get wrong (see FIELD-NOTES on watchdog).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collector.errors import RuleError
from collector.governance.load import load_rule_dir, rule_files_signature
from collector.governance.model import RuleSet, Waiver

log = logging.getLogger(__name__)
Emit = Callable[[dict[str, Any]], None]
Signature = tuple[tuple[str, int, int], ...]
MAX_SHOWN = 20  # problems carried in an event; the log and the page show them all


def collector_event(reason: str, **fields: object) -> dict[str, Any]:
    """A shadowai.collector event about the collector itself (agent.id empty)."""
    event: dict[str, Any] = {
        "event.dataset": "shadowai.collector",
        "event.action": "changed",
        "event.reason": reason,
        "agent.id": "",
    }
    event.update(fields)
    return event


class LiveRules:
    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        emit: Emit | None = None,
    ) -> None:
        """Load `path` now: RuleError if it is broken (fail closed: nothing to fall back on)."""
        self.path = path
        self._clock = clock
        self._emit = emit
        self._signature = rule_files_signature(path)
        self._rules = load_rule_dir(path)
        self._loaded_at = clock()
        self._pending: Signature | None = None
        self._failed: Signature | None = None
        self._error: list[str] = []
        self._error_at: datetime | None = None
        self._reported: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def current(self) -> RuleSet:
        return self._rules

    def set_emit(self, emit: Emit) -> None:
        self._emit = emit

    def status(self) -> dict[str, object]:
        """What the rules page shows: the last good load, the last error, expired exceptions."""
        rules = self._rules
        today = self._clock().date()
        return {
            "path": str(self.path),
            "rules": len(rules.rules),
            "exceptions": len(rules.waivers),
            "correlations": len(rules.correlations),
            "loaded_at": self._loaded_at.isoformat(),
            "error": list(self._error),
            "error_at": None if self._error_at is None else self._error_at.isoformat(),
            "expired": [_waiver_item(w) for w in rules.expired(today)],
            "waivers": [_waiver_item(w) for w in rules.waivers],
        }

    def check(self) -> bool:
        """One poll: reload on a settled change, report expiries; True if a new set is in."""
        with self._lock:
            swapped = self._poll()
            self._report_expired()
            return swapped

    def _poll(self) -> bool:
        signature = rule_files_signature(self.path)
        if signature == self._signature or signature == self._failed:
            self._pending = None
            return False
        if signature != self._pending:
            self._pending = signature  # wait one more tick: the edit may still be going on
            return False
        self._pending = None
        try:
            rules = load_rule_dir(self.path)
        except RuleError as exc:
            self._refuse(signature, exc.problems)
            return False
        self._rules, self._signature, self._failed = rules, signature, None
        self._loaded_at, self._error, self._error_at = self._clock(), [], None
        log.info("rules reloaded from %s: %d rules", self.path, len(rules.rules))
        self._send(collector_event("rules_reloaded", **{"shadowai.rules.count": len(rules.rules)}))
        return True

    def _refuse(self, signature: Signature, problems: list[str]) -> None:
        self._failed, self._error, self._error_at = signature, problems, self._clock()
        log.error(
            "rules in %s not reloaded, keeping the set loaded at %s:\n%s",
            self.path,
            self._loaded_at.isoformat(),
            "\n".join(problems),
        )
        fields = {
            "shadowai.rules.problems": problems[:MAX_SHOWN],
            "shadowai.rules.problem_count": len(problems),
            "shadowai.rules.last_good_load": self._loaded_at.isoformat(),
        }
        self._send(collector_event("rules_reload_failed", **fields))

    def _report_expired(self) -> None:
        for waiver in self._rules.expired(self._clock().date()):
            key = (waiver.id, waiver.expires.isoformat())
            if key in self._reported:
                continue
            self._reported.add(key)
            log.warning(
                "exception %s (%s, owner %s) expired on %s and no longer applies to %s",
                waiver.id,
                waiver.source,
                waiver.owner,
                waiver.expires.isoformat(),
                ", ".join(waiver.rule_ids),
            )
            fields = {f"shadowai.exception.{k}": v for k, v in _waiver_item(waiver).items()}
            self._send(collector_event("exception_expired", **fields))

    def _send(self, event: dict[str, Any]) -> None:
        if self._emit is None:
            return
        try:
            self._emit(event)
        except Exception:  # reporting must never stop the watcher; the log has the event
            log.exception("could not record collector event %s", event.get("event.reason"))

    def start(self, interval: float = 0.5) -> None:
        """Poll in a daemon thread until `stop()`."""
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name="rules-watch", daemon=True
        )
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.check()
            except Exception:  # a bug here must not leave the collector without its watcher
                log.exception("rules watcher")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


def _waiver_item(waiver: Waiver) -> dict[str, object]:
    return {
        "id": waiver.id,
        "title": waiver.title,
        "owner": waiver.owner,
        "reason": waiver.reason,
        "expires": waiver.expires.isoformat(),
        "rules": list(waiver.rule_ids),
        "source": waiver.source,
    }
