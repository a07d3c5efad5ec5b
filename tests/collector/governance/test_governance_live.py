"""Live reload: a good change is swapped in, a broken one keeps the last good set and says so
(log, status for the rules page, a shadowai.collector event); expiries are reported once."""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from collector.errors import RuleError
from collector.governance.live import LiveRules

RULE = """\
title: {title}
id: 33333333-3333-4333-8333-333333333333
status: experimental
level: high
logsource: {{product: shadowai, category: model_file}}
detection:
  sel: {{ai.model.format: gguf}}
  condition: sel
"""
WAIVER = """\
title: lab
id: 44444444-4444-4444-8444-444444444444
owner: sec@example.com
reason: lab machines
expires: 2027-01-02
logsource: {product: shadowai, category: model_file}
filter:
  rules: [33333333-3333-4333-8333-333333333333]
  lab: {host.group: lab}
  condition: not lab
"""


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2027, 1, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def make(tmp_path: Path, clock: Clock) -> tuple[LiveRules, list[dict[str, Any]]]:
    (tmp_path / "r.yml").write_text(RULE.format(title="first"))
    events: list[dict[str, Any]] = []
    return LiveRules(tmp_path, clock=clock, emit=events.append), events


def rewrite(path: Path, text: str) -> None:
    path.write_text(text)
    stat = path.stat()  # make sure the change shows even within one mtime tick
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def test_a_good_change_is_swapped_in_after_it_settles(tmp_path: Path) -> None:
    live, events = make(tmp_path, Clock())
    first = live.current()
    rewrite(tmp_path / "r.yml", RULE.format(title="second"))
    assert live.check() is False, "one poll sees the change, the next loads it"
    assert live.check() is True
    assert live.current() is not first
    assert [r.title for r in live.current().rules] == ["second"]
    assert [e["event.reason"] for e in events] == ["rules_reloaded"]


def test_a_broken_change_keeps_the_last_good_set_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    live, events = make(tmp_path, clock)
    loaded_at = live.status()["loaded_at"]
    clock.now += timedelta(minutes=5)
    rewrite(tmp_path / "r.yml", RULE.format(title="x").replace("level: high", "level: loud"))
    with caplog.at_level(logging.ERROR):
        live.check()
        live.check()
        live.check()  # the same broken files are reported once
    assert [r.title for r in live.current().rules] == ["first"]
    status = live.status()
    assert status["loaded_at"] == loaded_at
    assert status["error_at"] == clock.now.isoformat()
    assert any("r.yml:4: level" in p for p in status["error"])  # type: ignore[union-attr]
    (event,) = events
    assert event["event.dataset"] == "shadowai.collector"
    assert event["event.reason"] == "rules_reload_failed"
    assert event["shadowai.rules.last_good_load"] == loaded_at
    assert "keeping the set loaded at" in caplog.text
    rewrite(tmp_path / "r.yml", RULE.format(title="fixed"))
    live.check()
    assert live.check() and live.status()["error"] == []


def test_an_empty_rules_path_at_start_is_an_error_not_an_empty_policy(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="no rules found"):
        LiveRules(tmp_path)


def test_an_exception_is_reported_once_on_the_day_it_expires(tmp_path: Path) -> None:
    clock = Clock()
    live, events = make(tmp_path, clock)
    (tmp_path / "x.yml").write_text(WAIVER)
    live.check()
    live.check()
    assert live.status()["expired"] == []
    clock.now = datetime(2027, 1, 2, 0, 0, 1, tzinfo=UTC)
    live.check()
    live.check()
    expired = [e for e in events if e["event.reason"] == "exception_expired"]
    assert len(expired) == 1
    assert expired[0]["shadowai.exception.owner"] == "sec@example.com"
    assert expired[0]["shadowai.exception.expires"] == "2027-01-02"
    assert [w["id"] for w in live.status()["expired"]] == [  # type: ignore[union-attr]
        "44444444-4444-4444-8444-444444444444"
    ]


def test_the_watcher_thread_swaps_a_change_in_within_seconds(tmp_path: Path) -> None:
    live, _ = make(tmp_path, Clock())
    live.start(interval=0.05)
    try:
        rewrite(tmp_path / "r.yml", RULE.format(title="watched"))
        deadline = time.monotonic() + 5
        while live.current().rules[0].title != "watched" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert live.current().rules[0].title == "watched"
    finally:
        live.stop()
