"""Every local user's homes and stores from the OS user list, and system-wide stores."""

from __future__ import annotations

from pathlib import Path

from agent.platform import Platform
from agent.users import Account, LocalUser, local_users, people, service_roots, store_roots

LINUX = Platform(os_type="linux", home=Path("/nonexistent"), env={})

PASSWD = [
    Account("root", 0, "/root", "/bin/bash"),
    Account("daemon", 1, "/usr/sbin", "/usr/sbin/nologin"),
    Account("ollama", 998, "/usr/share/ollama", "/bin/false"),
    Account("alice", 1000, "/home/alice", "/bin/bash"),
    Account("bob", 1001, "/home/bob", "/usr/bin/zsh"),
    Account("shadowai", 997, "/var/lib/shadowai", "/usr/sbin/nologin"),
    Account("nobody", 65534, "/nonexistent", "/usr/sbin/nologin"),
    Account("alias", 1002, "/home/alice/", "/bin/bash"),  # a second name for one home
]


def test_people_are_login_accounts_with_a_home_each_once() -> None:
    assert people(PASSWD, "linux") == [
        LocalUser("root", Path("/root")),
        LocalUser("alice", Path("/home/alice")),
        LocalUser("bob", Path("/home/bob")),
    ]


def test_macos_daemons_are_not_people() -> None:
    accounts = [
        Account("_ollama", 260, "/var/empty", "/usr/bin/false"),
        Account("_www", 70, "/Library/WebServer", "/bin/sh"),
        Account("carol", 501, "/Users/carol", "/bin/zsh"),
    ]
    assert people(accounts, "macos") == [LocalUser("carol", Path("/Users/carol"))]


def test_windows_people_are_the_domain_and_local_profiles() -> None:
    accounts = [
        Account("systemprofile", -1, r"C:\Windows\system32\config\systemprofile", sid="S-1-5-18"),
        Account("dave", -1, r"C:\Users\dave", sid="S-1-5-21-1-2-3-1001"),
    ]
    assert [u.name for u in people(accounts, "windows")] == ["dave"]


def test_each_users_stores_come_from_their_own_home_and_system_stores_follow() -> None:
    users = people(PASSWD, "linux")
    paths = [str(r.path) for r in store_roots(LINUX, users)]
    assert "/home/alice/.ollama/models" in paths
    assert "/home/bob/.cache/huggingface/hub" in paths
    assert "/home/bob/.lmstudio/models" in paths
    assert "/var/lib/ollama/.ollama/models" in paths
    assert "/usr/share/ollama/.ollama/models" in paths
    assert len(paths) == len(set(paths))


def test_a_service_covers_homes_once_and_stores_outside_them(tmp_path: Path) -> None:
    users = [LocalUser("alice", tmp_path / "alice")]
    existing = {tmp_path / "alice", Path("/var/lib/ollama/.ollama/models")}
    roots = service_roots(LINUX, users, homes=True, exists=lambda p: p in existing)
    assert roots == [tmp_path / "alice", Path("/var/lib/ollama/.ollama/models")]
    existing.add(tmp_path / "alice" / ".ollama" / "models")
    stores_only = service_roots(LINUX, users, homes=False, exists=lambda p: p in existing)
    assert stores_only == [
        tmp_path / "alice" / ".ollama" / "models",
        Path("/var/lib/ollama/.ollama/models"),
    ]


def test_a_user_list_that_cannot_be_read_leaves_the_system_stores() -> None:
    def broken() -> list[Account]:
        raise OSError("no passwd")

    assert local_users(LINUX, broken) == []


def test_capabilities_are_read_from_the_effective_set(tmp_path: Path) -> None:
    from agent.platform import CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE, has_capability

    status = tmp_path / "status"
    status.write_text("Name:\tpython\nCapInh:\t0000000000000000\nCapEff:\t0000000000080004\n")
    assert has_capability(CAP_DAC_READ_SEARCH, str(status))
    assert has_capability(CAP_SYS_PTRACE, str(status))
    status.write_text("CapEff:\t0000000000000004\n")
    assert not has_capability(CAP_SYS_PTRACE, str(status))
    assert not has_capability(CAP_DAC_READ_SEARCH, str(tmp_path / "missing"))


def test_a_home_walk_skips_package_caches_but_not_model_stores(
    tmp_path: Path, small_gguf: Path
) -> None:
    from agent.observe import Coverage, observe_tree

    home = tmp_path / "alice"
    for folder in (".cache/pip/http", ".cache/huggingface/hub", ".local/share/Trash/files"):
        (home / folder).mkdir(parents=True)
        (home / folder / "m.gguf").write_bytes(small_gguf.read_bytes())
    excludes = LINUX.default_excludes()
    found = observe_tree([home], excludes=excludes, coverage=Coverage())
    assert [Path(o.path).parent.name for o in found] == ["hub"]
