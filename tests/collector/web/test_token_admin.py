"""Token administration shared by the CLI, the pages and the API: the checks, and the CLI's
commands audited under the user who ran them."""

from __future__ import annotations

import getpass
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector.cli import main
from collector.paging import Listing
from collector.store import AgentRecord, Store
from collector.store.audit import AuditFilter
from collector.web import token_admin as admin
from wire import tokens

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_expiry_is_hours_from_now_or_never() -> None:
    assert admin.expiry(0, NOW) is None
    assert admin.expiry(1.5, NOW) == NOW + timedelta(minutes=90)
    for bad in [-1, math.nan, math.inf, admin.MAX_HOURS + 1, True]:
        with pytest.raises(admin.AdminError) as caught:
            admin.expiry(bad, NOW)
        assert caught.value.field == "expires_in_hours"


def test_group_names_are_printable_and_trimmed() -> None:
    assert admin.group_name("  ml team ") == "ml team"
    for bad in ["", "   ", "x" * 256, "bell\x07", "line\nbreak", "\u202eevil"]:
        with pytest.raises(admin.AdminError):
            admin.group_name(bad)


def test_created_tokens_are_stored_by_digest_and_audited(store: Store) -> None:
    made = admin.create_enrollment_token(
        store,
        ca_fingerprint="ef" * 32,
        group="lab",
        uses=4,
        expires_in_hours=2,
        actor="user:alice",
        now=NOW,
    )
    token = tokens.parse(made.text)
    assert made.expires_at == NOW + timedelta(hours=2)
    assert (
        store.redeem_enrollment_token(
            token_id=token.token_id, secret_sha256=token.secret_sha256, now=NOW
        )
        == "lab"
    )
    api = admin.create_api_token(
        store, role="viewer", expires_in_hours=0, actor="user:alice", now=NOW
    )
    assert api.expires_at is None and api.text.startswith("sat_")
    with pytest.raises(admin.AdminError):
        admin.create_api_token(store, role="root", expires_in_hours=0, actor="user:a", now=NOW)
    with pytest.raises(admin.AdminError):
        admin.create_enrollment_token(
            store,
            ca_fingerprint="ef" * 32,
            group="g",
            uses=0,
            expires_in_hours=1,
            actor="user:a",
            now=NOW,
        )
    entries = store.page_audit(AuditFilter(actor="user:alice"), Listing(sort="id")).items
    assert [e["action"] for e in entries] == ["enrollment_token.create", "api_token.create"]


def test_cli_changes_are_audited_as_the_os_user(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--data-dir", str(tmp_path)]
    assert main(["tokens", "create", "--group", "lab", "--uses", "2", *base]) == 0
    token = tokens.parse(capsys.readouterr().out.strip())
    assert main(["api-tokens", "create", "--role", "viewer", "--expires-in", "1", *base]) == 0
    api_id = capsys.readouterr().out.strip().split("_")[1]
    assert main(["api-tokens", "list", *base]) == 0
    (listed,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert listed["token_id"] == api_id and listed["expires_at"] is not None
    assert main(["tokens", "revoke", token.token_id, *base]) == 0
    assert main(["api-tokens", "revoke", api_id, *base]) == 0
    store = Store.open(f"sqlite:///{tmp_path / 'collector.db'}")
    try:
        store.add_agent(AgentRecord("ag-1", b"\x01" * 32, "lap", "linux", "g", "1", NOW))
        assert main(["agents", "revoke", "ag-1", *base]) == 0
        entries = store.page_audit(AuditFilter(), Listing(sort="id")).items
    finally:
        store.close()
    assert {e["actor"] for e in entries} == {f"cli:{getpass.getuser()}"}
    assert [e["action"] for e in entries] == [
        "enrollment_token.create",
        "api_token.create",
        "enrollment_token.revoke",
        "api_token.revoke",
        "agent.revoke",
    ]
    assert entries[0]["after"]["max_uses"] == 2 and token.secret not in str(entries)


def test_cli_refuses_a_bad_request_with_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tokens", "create", "--uses", "0", "--data-dir", str(tmp_path)]) == 2
    assert "uses: must be" in capsys.readouterr().err
