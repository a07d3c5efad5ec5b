"""The one path from observations to events that `scan` and `run` share."""

from __future__ import annotations

import io
import json
import os
import pwd
from pathlib import Path

from agent.catalog import NoStores
from agent.cli import main
from agent.detect.formats import ModelInfo
from agent.detect.model import FileObservation
from agent.inventory import Known, Ledger, Reported
from agent.pipeline import HostFacts, describe, record, removals, stamp, with_digest

HOST = HostFacts("agent-1", "lap-7", "linux", "lab")


def _obs(path: str, inode: int) -> FileObservation:
    info = ModelInfo(format="gguf")
    return FileObservation(path, 100, 5, 1, inode, None, "fp", info)


def test_a_stamped_event_carries_action_time_agent_and_host() -> None:
    event = stamp({"file.path": "/m/a.gguf"}, "discovered", HOST, 1_700_000_000.25)
    assert event["event.dataset"] == "shadowai.model_file"
    assert event["event.action"] == "discovered"
    assert event["@timestamp"] == "2023-11-14T22:13:20.250Z"
    assert (event["host.name"], event["host.group"], event["agent.id"]) == (
        "lap-7",
        "lab",
        "agent-1",
    )


def test_a_scan_without_enrollment_has_no_group_or_agent_id() -> None:
    event = stamp(
        {"event.dataset": "shadowai.agent_health"}, "snapshot", HostFacts("", "h", "linux"), 0
    )
    assert event["event.dataset"] == "shadowai.agent_health"
    assert "host.group" not in event and "agent.id" not in event


def test_a_description_carries_the_stat_identity_and_the_digest() -> None:
    model = Reported("/home/alice/a.gguf", _obs("/home/alice/a.gguf", 1), ModelInfo(format="gguf"))
    known = describe(model, "ab" * 32, NoStores())
    assert known.stat_key == (1, 1, 100, 5)  # device, inode, size, mtime_ns
    assert known.fields["file.hash.sha256"] == "ab" * 32


def test_a_second_name_of_a_reported_file_is_not_reported_again() -> None:
    ledger = Ledger()
    ledger.begin()
    first = Known((1, 7, 100, 5), {"file.path": "/m/a"})
    assert record(ledger, "/m/a", first, snapshot=False, same_file=lambda p, k: True) is not None
    second = Known((1, 7, 100, 5), {"file.path": "/m/link"})
    assert record(ledger, "/m/link", second, snapshot=False, same_file=lambda p, k: True) is None
    # ... unless the first name no longer names that file.
    assert record(ledger, "/m/link", second, snapshot=False, same_file=lambda p, k: False)


def test_what_a_pass_did_not_see_is_removed_only_within_scope() -> None:
    ledger = Ledger({"/m/a": Known((1, 1, 1, 1), {}), "/n/b": Known((1, 2, 1, 1), {})})
    generation = ledger.begin()
    assert [a for a, _ in removals(ledger, ["/m"], generation)] == ["removed"]
    assert len(ledger) == 1


def test_a_late_digest_is_a_change_only_for_the_same_version() -> None:
    ledger = Ledger({"/m/a": Known((1, 1, 1, 1), {"file.path": "/m/a"})})
    assert with_digest(ledger, "/m/a", (1, 1, 1, 2), "00") is None  # rewritten since
    action, fields = with_digest(ledger, "/m/a", (1, 1, 1, 1), "00") or ("", {})
    assert (action, fields["file.hash.sha256"]) == ("changed", "00")


def test_scan_reports_the_owner_of_each_model_file(tmp_path: Path, small_gguf: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "m.gguf").write_bytes(small_gguf.read_bytes())
    out = io.StringIO()
    assert main(["scan", "--no-processes", "--format", "json", str(folder)], out=out) == 0
    (line,) = out.getvalue().splitlines()
    event = json.loads(line)
    assert event["file.path"] == str(folder / "m.gguf")
    assert event["user.name"] == pwd.getpwuid(os.getuid()).pw_name
