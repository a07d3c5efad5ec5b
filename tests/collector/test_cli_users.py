"""`shadowai-collector users ...` and `api-tokens create --expires-in` as real processes,
passwords on standard input; `serve`'s refusals of unsafe dashboard settings."""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector import accounts
from collector.cli import main
from collector.errors import CollectorError
from collector.store import Store
from collector.web.passwords import Passwords

PASSWORD = "a long enough passphrase"


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.data_dir = tmp_path / "collector"
        self.url = f"sqlite:///{tmp_path / 'collector.db'}"

    def __call__(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "collector.cli", "--data-dir", str(self.data_dir)]
        cmd += ["--database", self.url, *args]
        return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120)

    def store(self) -> Store:
        return Store.open(self.url)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def test_users_create_reads_the_password_from_stdin(cli: Cli) -> None:
    made = cli("users", "create", "--username", "demo", "--role", "admin", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    assert made.stdout == ""
    listed = cli("users", "list")
    (line,) = listed.stdout.splitlines()
    user = json.loads(line)
    assert (user["username"], user["role"], user["disabled"]) == ("demo", "admin", False)
    assert "hash" not in line and "argon2" not in line
    store = cli.store()
    try:
        stored = store.get_user("demo")
        assert stored is not None and stored.password_hash.startswith("$argon2id$")
        assert Passwords().check(stored.password_hash, PASSWORD).ok
        (entry,) = store.list_audit_entries()
        assert (entry["actor"], entry["action"], entry["target"]) == (
            "cli",
            "user.create",
            "user:demo",
        )
        assert entry["after"] == {"username": "demo", "role": "admin"}
    finally:
        store.close()


@pytest.mark.parametrize(
    ("username", "role", "stdin", "says"),
    [
        ("a", "admin", "", "the password is empty"),
        ("a", "admin", "\n", "the password is empty"),
        ("a", "admin", "short pass1\n", "needs at least 12"),
        ("a", "admin", "x" * 1025, "more than 1024"),
        ("-a", "admin", "", "username '-a'"),
        ("a b", "admin", "", "username 'a b'"),
        ("a" * 65, "admin", "", "use 1-64 letters"),
        ("a", "root", "", "role 'root'"),
    ],
)
def test_users_create_refuses_with_a_clear_message(
    store: Store, username: str, role: str, stdin: str, says: str
) -> None:
    args = argparse.Namespace(action="create", username=username, role=role)
    with pytest.raises(CollectorError, match=re.escape(says)):
        accounts.run(args, store, io.StringIO(stdin), print)
    assert store.list_users() == []


def test_a_refusal_exits_with_status_2_and_says_why(cli: Cli) -> None:
    refused = cli("users", "create", "--username", "a", "--role", "admin", stdin="too short\n")
    assert refused.returncode == 2
    assert refused.stderr == (
        "error: the password has 9 characters; it needs at least 12 "
        "(the password is read from standard input)\n"
    )


def test_a_second_user_of_the_same_name_is_refused(cli: Cli) -> None:
    assert (
        cli("users", "create", "--username", "a", "--role", "admin", stdin=PASSWORD).returncode == 0
    )
    again = cli("users", "create", "--username", "a", "--role", "viewer", stdin=PASSWORD)
    assert again.returncode == 2 and "user 'a' exists" in again.stderr


def test_disable_enable_and_set_password(cli: Cli) -> None:
    cli("users", "create", "--username", "bob", "--role", "viewer", stdin=PASSWORD)
    assert cli("users", "disable", "bob").returncode == 0
    assert json.loads(cli("users", "list").stdout)["disabled"] is True
    assert cli("users", "enable", "bob").returncode == 0
    assert json.loads(cli("users", "list").stdout)["disabled"] is False
    new = "another long passphrase"
    assert cli("users", "set-password", "bob", stdin=new + "\r\n").returncode == 0
    assert cli("users", "set-password", "bob", stdin="tiny").returncode == 2
    missing = cli("users", "disable", "nobody")
    assert missing.returncode == 2 and "no user 'nobody'" in missing.stderr
    store = cli.store()
    try:
        bob = store.get_user("bob")
        assert bob is not None and Passwords().check(bob.password_hash, new).ok
        actions = [(e["action"], e["before"], e["after"]) for e in store.list_audit_entries()]
        assert actions[:3] == [
            ("user.set_password", None, None),
            ("user.enable", {"disabled": True}, {"disabled": False}),
            ("user.disable", {"disabled": False}, {"disabled": True}),
        ]
    finally:
        store.close()


def test_api_tokens_expire_after_the_days_given(cli: Cli) -> None:
    before = datetime.now(UTC)
    made = [
        cli("api-tokens", "create", "--role", "viewer", *extra)
        for extra in ([], ["--expires-in", "1"], ["--expires-in", "0"])
    ]
    assert all(m.returncode == 0 for m in made)
    listed = [json.loads(line) for line in cli("api-tokens", "list").stdout.splitlines()]
    expiries = [t["expires_at"] for t in listed]
    assert expiries[2] is None
    ninety, one = (datetime.fromisoformat(e) - before for e in expiries[:2])
    assert timedelta(days=90) <= ninety < timedelta(days=90, minutes=5)
    assert timedelta(days=1) <= one < timedelta(days=1, minutes=5)
    assert cli("api-tokens", "create", "--role", "viewer", "--expires-in", "-1").returncode == 2
    assert cli("api-tokens", "revoke", listed[0]["token_id"]).returncode == 0
    store = cli.store()
    try:
        actions = [(e["action"], e["target"]) for e in store.list_audit_entries()]
        assert actions[0] == ("api_token.revoke", f"api-token:{listed[0]['token_id']}")
        assert [a for a, _ in actions[1:]] == ["api_token.create"] * 3
    finally:
        store.close()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--http", "0.0.0.0:0"], "passwords would cross the network in clear"),
        (["--http", "[::]:0"], "passwords would cross the network in clear"),
        (["--allowed-host", "evil example"], "not a host name or address"),
        (["--session-idle", "0"], "must be above 0"),
    ],
)
def test_serve_refuses_unsafe_or_bad_dashboard_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    argv = ["serve", "--data-dir", str(tmp_path), "--grpc", "127.0.0.1:0", *args]
    assert main(argv) == 2
    assert says in capsys.readouterr().err


def test_the_login_less_dashboard_switch_is_gone(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--unsafe-dashboard-without-login"])
    assert "unrecognized arguments" in capsys.readouterr().err
